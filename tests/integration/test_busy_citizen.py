"""One busy citizen cannot stop the bus: 10,000 events for one pseudonym on the real broker.

Before the per-citizen limits, about 2,300 events for one pseudonym made its
state larger than the changelog accepts; the refused send stopped the worker
and the replay repeated it. Here the worker dead-letters what passes a limit
(``citizen_state_limit``), keeps every changelog record small, notifies
another citizen's caseworker, and is still running at the end.
"""

from __future__ import annotations

import datetime as dt
import urllib.request
import uuid
from collections import Counter
from typing import Any

import orjson
from confluent_kafka import Producer

from advisering.dev.scenario import synthetic_cpr
from advisering.engine.limits import DEFAULT_LIMITS
from advisering.kafka.topics import CASE_EVENTS, DEAD_LETTERS, NOTIFICATIONS
from advisering.privacy import pseudonymise
from advisering.testing import end_offsets, kafka_at, read_topic
from tests.integration.bus import WorkerProcess

BUSY_EVENTS = 10_000
BUSY_CASES = 5_000  # case.opened for as many cases; then document.added for the first 100
BASE = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def case_event(event_id: str, event_type: str, citizen: str, case: dict[str, Any],
               source: str, seconds: int, **data: Any) -> dict[str, Any]:
    """A pseudonymised CloudEvent as it sits on advisering.case-events."""
    return {
        "specversion": "1.0", "id": event_id, "source": source, "type": event_type,
        "time": (BASE + dt.timedelta(seconds=seconds)).isoformat(),
        "datacontenttype": "application/json",
        "data": {"case": case, "parties": [{"citizen": citizen, "role": "primaer"}], **data},
    }


def busy_events(citizen: str) -> list[dict[str, Any]]:
    """case.opened for 5,000 cases, then document.added for the first 100; UUID event ids.

    Unbounded, this state passed 1 MB after about 3,000 of them.
    """
    events = []
    for n in range(BUSY_EVENTS):
        number = n if n < BUSY_CASES else n % DEFAULT_LIMITS.max_open_cases
        case = {"id": f"MOM-BUSY-{number:05d}", "kle": "32.24.06", "status": "oplyst",
                "department": "jobcenter", "unit": "jc-nord", "caseworker": "jc-4711"}
        kind = "case.opened" if n < BUSY_CASES else "document.added"
        events.append(case_event(f"busy-{uuid.uuid4()}", kind, citizen, case, "momentum", n))
    return events


def publish(bootstrap: str, events: list[dict[str, Any]], key: bytes | None = None) -> None:
    """Every event on advisering.case-events in one go, keyed (old style) by case id or ``key``."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for number, event in enumerate(events):
        producer.produce(CASE_EVENTS, key=key or event["data"]["case"]["id"].encode(),
                         value=orjson.dumps(event))
        if number % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def test_busy_citizen_is_dead_lettered_and_the_bus_keeps_running(
    worker: WorkerProcess, topics_ready: str
) -> None:
    """10,000 events for one citizen: limits dead-letter, another citizen is notified, alive."""
    bootstrap = topics_ready
    key = worker.env["ADVISERING_PSEUDONYM_KEY"].encode()
    busy, other = (pseudonymise(synthetic_cpr(n), key) for n in (91, 92))
    letters_start = end_offsets(kafka_at(bootstrap), DEAD_LETTERS)
    notifications_start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
    child_case = {"id": "DUBU-LIMIT-0001", "kle": "34.15.00", "status": "oplyst",
                  "department": "boern-familie", "unit": "bf-syd", "caseworker": "bf-0042"}
    publish(bootstrap, [case_event("other-open", "case.opened", other, child_case, "dubu", 0)])
    worker.wait_idle(bootstrap)

    # One key for the flood: one partition, so the order (and which events a limit
    # refuses) is the order published.
    publish(bootstrap, busy_events(busy), key=b"busy-citizen")
    job_case = {"id": "MOM-LIMIT-0001", "kle": "32.24.06", "status": "oplyst",
                "department": "jobcenter", "unit": "jc-nord", "caseworker": "jc-4711"}
    publish(bootstrap, [case_event("other-sanction", "benefit.changed", other, job_case,
                                   "momentum", 60, benefit={"action": "sanctioned"})])
    worker.wait_idle(bootstrap, timeout=300)

    notifications = [orjson.loads(r.value or b"") for r in read_topic(
        kafka_at(bootstrap), NOTIFICATIONS, notifications_start, timeout=60)]
    told = [(n["rule"], n["recipient"]["caseworker"], n["related_case"]["id"])
            for n in notifications if n["citizen"] == other]
    assert told == [("sanktion-til-boernesag", "bf-0042", "DUBU-LIMIT-0001")]

    letters = [orjson.loads(r.value or b"") for r in
               read_topic(kafka_at(bootstrap), DEAD_LETTERS, letters_start, timeout=120)]
    # A new worker reads the topic from its start: earlier runs' floods are other citizens.
    busy_letters = [letter for letter in letters if busy in letter["payload"]]
    assert {letter["reason"] for letter in busy_letters} == {"citizen_state_limit"}
    # The first 100 cases open, the other 4,900 are refused; the documents are accepted
    # until 2,000 events are remembered, the rest refused.
    limits = Counter(letter["message"].split(" would pass ")[1].split(" ")[0]
                     for letter in busy_letters)
    assert limits == {
        "max_open_cases": BUSY_CASES - DEFAULT_LIMITS.max_open_cases,
        "max_seen_events": BUSY_EVENTS - DEFAULT_LIMITS.max_seen_events
        - (BUSY_CASES - DEFAULT_LIMITS.max_open_cases)}
    assert busy not in orjson.dumps(busy_letters[0]["message"]).decode()

    changelog = f"{worker.app_id}-citizens-changelog"
    sizes = [len(r.value or b"") for r in read_topic(kafka_at(bootstrap), changelog, timeout=60)]
    assert sizes and max(sizes) <= 256 * 1024

    assert worker.process is not None and worker.process.poll() is None
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/healthz",
                                timeout=5) as response:
        assert response.status == 200
    metrics = worker.metrics()
    assert 'advisering_citizen_state_limit_total{limit="max_seen_events"}' in metrics
    assert 'advisering_dead_letters_total{reason="citizen_state_limit"}' in metrics

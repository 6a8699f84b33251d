"""What a chaos run must show: the topics and the inbox against the acknowledgements and oracle.

- every event the ingest acknowledged is on ``advisering.case-events``;
- the inbox holds exactly the oracle's notification ids, each in one row;
- the dead letters hold exactly the planted events;
- `advisering rules backtest` over the topic counts, per rule, what the inbox holds.

Duplicates on ``advisering.notifications`` (the same id written twice by the
worker's non-idempotent producer after a retry or a redone batch) are counted
and reported: the inbox absorbs them, which the check on its rows shows.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Producer

from advisering.kafka.topics import CASE_EVENTS, DEAD_LETTERS, NOTIFICATIONS
from advisering.testing import kafka_at, read_topic
from tests.chaos.system import System
from tests.chaos.workload import Oracle, Workload
from tests.integration.bus import run_cli


@dataclass
class Findings:
    """Everything a run found, for the table and for the assertions."""

    acked: int = 0
    on_topic: int = 0  # distinct event ids on case-events
    topic_records: int = 0  # records on case-events (a re-sent request adds records)
    acked_missing: list[str] = field(default_factory=list)
    expected: int = 0
    found: int = 0  # distinct ids in the inbox
    inbox_rows: int = 0
    missing: list[str] = field(default_factory=list)  # expected, not in the inbox
    missing_on_topic: list[str] = field(default_factory=list)  # expected, not on the topic
    unexpected: list[str] = field(default_factory=list)  # in the inbox, not expected
    topic_duplicates: int = 0  # notification records beyond the first of their id
    dead_letters: Counter[str] = field(default_factory=Counter)  # event id -> records
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    dead_letters_expected: set[str] = field(default_factory=set)
    backtest_per_rule: dict[str, int] = field(default_factory=dict)
    inbox_per_rule: dict[str, int] = field(default_factory=dict)


def plant_direct(system: System, workload: Workload) -> None:
    """Write the planted foreign events straight to case-events, confirmed by every replica."""
    producer = Producer({"bootstrap.servers": system.bootstrap, "acks": "all"})
    for event in workload.direct:
        producer.produce(CASE_EVENTS, key=event["id"].encode(), value=orjson.dumps(event))
    assert producer.flush(60) == 0, "planted events not confirmed"


def read_values(system: System, topic: str) -> list[dict[str, object]]:
    return [orjson.loads(record.value) for record in
            read_topic(kafka_at(system.bootstrap), topic, timeout=120) if record.value]


def inbox_rows(system: System) -> list[tuple[str, str]]:
    """(id, rule) of every row of serve's inbox database."""
    with sqlite3.connect(f"file:{system.inbox_db}?mode=ro", uri=True) as db:
        return [(str(i), str(r)) for i, r in db.execute("SELECT id, rule FROM notifications")]


def backtest_counts(system: System) -> dict[str, int]:
    """`advisering rules backtest` over everything on case-events: notifications per rule."""
    now = dt.datetime.now(dt.UTC)
    result = run_cli(system.env, "rules", "backtest", "--json", "--quiet",
                     "--from", (now - dt.timedelta(days=1)).isoformat(),
                     "--to", (now + dt.timedelta(days=1)).isoformat(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = orjson.loads(result.stdout)["rules"]
    return {rule: int(figures["notifications"]) for rule, figures in rules.items()
            if figures["notifications"]}


def gather(system: System, acked: set[str], oracle: Oracle) -> Findings:
    """Read the topics, the inbox and the backtest; compare them with the acks and the oracle."""
    found = Findings(acked=len(acked), expected=len(oracle.notifications),
                     dead_letters_expected=set(oracle.dead_letters))
    events = Counter(str(value["id"]) for value in read_values(system, CASE_EVENTS)
                     if isinstance(value, dict) and "id" in value)
    found.on_topic, found.topic_records = len(events), sum(events.values())
    found.acked_missing = sorted(acked - set(events))
    notes = Counter(str(value["id"]) for value in read_values(system, NOTIFICATIONS))
    found.topic_duplicates = sum(count - 1 for count in notes.values())
    rows = inbox_rows(system)
    ids = {ident for ident, _ in rows}
    found.found, found.inbox_rows = len(ids), len(rows)
    found.missing = sorted(set(oracle.notifications) - ids)
    found.unexpected = sorted(ids - set(oracle.notifications))
    found.missing_on_topic = sorted(set(oracle.notifications) - set(notes))
    found.inbox_per_rule = dict(sorted(Counter(rule for _, rule in rows).items()))
    for letter in read_values(system, DEAD_LETTERS):
        found.dead_letters[str(letter.get("event_id"))] += 1
        found.dead_letter_reasons[str(letter.get("reason"))] += 1
    found.backtest_per_rule = backtest_counts(system)
    return found


def problems(found: Findings, oracle: Oracle) -> list[str]:
    """Every way the run broke the promise, in words; empty when it kept it."""
    out = []
    if found.acked_missing:
        out.append(f"{len(found.acked_missing)} acknowledged events not on the topic: "
                   f"{found.acked_missing[:5]}")
    if found.missing or found.unexpected:
        out.append(f"inbox differs from the oracle: {len(found.missing)} missing "
                   f"{found.missing[:5]}, {len(found.unexpected)} unexpected "
                   f"{found.unexpected[:5]}; not on {NOTIFICATIONS} either: "
                   f"{found.missing_on_topic[:5]}; caused by (event id, citizen): "
                   f"{[oracle.causes.get(ident) for ident in found.missing[:5]]}")
    if found.inbox_rows != found.found:
        out.append(f"{found.inbox_rows - found.found} inbox rows repeat an id")
    if set(found.dead_letters) != found.dead_letters_expected:
        out.append(f"dead letters {sorted(found.dead_letters)} are not the planted "
                   f"{sorted(found.dead_letters_expected)}")
    if found.backtest_per_rule != oracle.per_rule():
        out.append(f"rules backtest over the topic {found.backtest_per_rule} differs from "
                   f"the oracle {oracle.per_rule()}")
    if found.inbox_per_rule != oracle.per_rule():
        out.append(f"inbox per rule {found.inbox_per_rule} differs from {oracle.per_rule()}")
    return out

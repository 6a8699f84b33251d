"""Grants and keys on the real broker: forged events dead-lettered, keys changed without restart."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from advisering.dev.scenario import event, synthetic_cpr
from advisering.edge.prepare import prepare_event
from advisering.events import CaseEvent, encode_event
from advisering.kafka.topics import CASE_EVENTS, DEAD_LETTERS, NOTIFICATIONS, load_vocabulary
from advisering.privacy import find_cprs, pseudonymise
from advisering.testing import end_offsets, kafka_at, read_topic
from tests.integration.bus import (
    ROOT,
    WorkerProcess,
    bus_env,
    free_port,
    run_cli,
    terminate,
    write_jsonl,
)

WHEN = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
VOCABULARY = load_vocabulary(ROOT / "topics")


def case(case_id: str, department: str, unit: str, caseworker: str, kle: str) -> dict[str, Any]:
    return {"id": case_id, "kle": kle, "status": "opstaaet", "department": department,
            "unit": unit, "caseworker": caseworker}


def with_id(raw: dict[str, Any]) -> dict[str, Any]:
    return dict(raw, id=str(uuid.uuid4()))


def test_forged_events_on_kafka_are_dead_lettered_and_notify_nobody(
    worker: WorkerProcess, bootstrap: str, tmp_path: Path
) -> None:
    """Written straight to Kafka, the job centre's forgeries are not_granted, a stranger is
    unknown_source, and nobody (insider-1 least of all) is told anything."""
    key = worker.env["ADVISERING_PSEUDONYM_KEY"]
    cpr = synthetic_cpr(4242)
    citizen = pseudonymise(cpr, key.encode())
    suffix = uuid.uuid4().hex[:6]
    # The citizen has a job-centre case and a home-care case: a death notice, or a
    # children's case opened for them, would notify those caseworkers.
    legit = [
        with_id(event(1, "momentum", "case.opened", WHEN, cpr, case(
            f"MOM-F-{suffix}", "jobcenter", "jobcenter-nord", "jc-4242", "32.24.06"))),
        with_id(event(1, "nexus", "case.opened", WHEN, cpr, case(
            f"CARE-F-{suffix}", "aeldre", "hjemmepleje-vest", "hp-4242", "27.36.04"))),
    ]
    published = run_cli(worker.env, "publish", str(write_jsonl(tmp_path / "legit.jsonl", legit)))
    assert published.returncode == 0, published.stdout + published.stderr
    worker.wait_idle(bootstrap)

    childrens_case = case(f"DUBU-F-{suffix}", "boern-familie", "bf-syd", "insider-1", "34.15.00")
    forged = {
        "death": with_id(event(2, "momentum", "citizen.deceased", WHEN, cpr)),
        "childrens_case": with_id(event(3, "momentum", "case.opened", WHEN, cpr,
                                        childrens_case)),
        "stranger": with_id(event(4, "fremmed-system", "case.opened", WHEN, cpr, case(
            f"X-F-{suffix}", "jobcenter", "jobcenter-nord", "jc-4242", "32.24.06"))),
    }
    letters_start = end_offsets(kafka_at(bootstrap), DEAD_LETTERS)
    notes_start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
    producer = Producer({"bootstrap.servers": bootstrap})
    for raw in forged.values():
        prepared = prepare_event(raw, key.encode(), VOCABULARY)
        assert isinstance(prepared, CaseEvent), prepared
        producer.produce(CASE_EVENTS, key=prepared.key.encode(), value=encode_event(prepared))
    assert producer.flush(30) == 0
    worker.wait_idle(bootstrap)

    letters = {letter["event_id"]: letter for letter in (
        orjson.loads(r.value or b"")
        for r in read_topic(kafka_at(bootstrap), DEAD_LETTERS, letters_start))}
    death = letters[forged["death"]["id"]]
    assert (death["reason"], death["path"]) == ("not_granted", "type")
    assert "citizen.deceased" in death["message"]
    insider = letters[forged["childrens_case"]["id"]]
    assert (insider["reason"], insider["path"]) == ("not_granted", "data.case.department")
    assert "boern-familie" in insider["message"]
    stranger = letters[forged["stranger"]["id"]]
    assert (stranger["reason"], stranger["path"]) == ("unknown_source", "source")
    for letter in letters.values():
        assert not find_cprs(orjson.dumps(letter).decode())

    notes = [orjson.loads(r.value or b"") for r in read_topic(kafka_at(bootstrap), NOTIFICATIONS,
                                                                notes_start)]
    assert [n for n in notes if n["citizen"] == citizen] == []
    assert [n for n in notes if n["recipient"]["caseworker"] == "insider-1"] == []
    metrics = worker.metrics()
    assert 'advisering_dead_letters_total{reason="not_granted"}' in metrics
    assert 'advisering_dead_letters_total{reason="unknown_source"}' in metrics

    # The control: the same children's case from the children's system is granted and
    # does notify its caseworker, so the silence above was the grants' doing.
    granted = with_id(dict(forged["childrens_case"], source="dubu"))
    path = write_jsonl(tmp_path / "granted.jsonl", [granted])
    assert run_cli(worker.env, "publish", str(path)).returncode == 0
    worker.wait_idle(bootstrap)
    notes = [orjson.loads(r.value or b"") for r in read_topic(kafka_at(bootstrap), NOTIFICATIONS,
                                                                notes_start)]
    assert [n["rule"] for n in notes if n["citizen"] == citizen] == ["ny-boernesag-orientering"]


class Serve:
    """`advisering serve` as a subprocess on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = dict(env, ADVISERING_SERVE_PORT=str(self.port))
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "advisering.cli", "serve"], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, cwd=ROOT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz",
                                            timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"serve not ready:\n{self.log_path.read_text()[-3000:]}")

    def post(self, key: str, body: Any) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/events", data=orjson.dumps(body),
            method="POST", headers={"Authorization": f"Bearer {key}",
                                    "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def stop(self) -> None:
        terminate(self.process)


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    """True as soon as ``condition`` holds, False if it did not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_serve_follows_rotation_and_revocation_without_restart(
    bootstrap: str, tmp_path: Path
) -> None:
    """A running serve accepts a rotated key within seconds, keeps the old one in its grace,
    and refuses both once the source is revoked; never restarted."""
    applied = run_cli(bus_env(bootstrap), "topics", "apply", "--replication-factor", "1")
    assert applied.returncode == 0, applied.stderr
    env = bus_env(bootstrap, ADVISERING_SOURCES_FILE=str(tmp_path / "sources.yaml"))
    added = run_cli(env, "sources", "add", "momentum", "--types", "case.*,benefit.changed",
                    "--departments", "jobcenter")
    assert added.returncode == 0, added.stderr
    old_key = added.stdout.strip().splitlines()[-1]
    cpr = synthetic_cpr(4343)
    opened = event(1, "momentum", "case.opened", WHEN, cpr, case(
        "MOM-ROT-1", "jobcenter", "jobcenter-nord", "jc-4343", "32.24.06"))
    serve = Serve(env, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        assert serve.post(old_key, with_id(opened)) == 202
        rotated = run_cli(env, "sources", "add", "momentum", "--rotate")
        assert rotated.returncode == 0, rotated.stderr
        new_key = rotated.stdout.strip().splitlines()[-1]
        assert new_key != old_key
        assert within(10, lambda: serve.post(new_key, with_id(opened)) == 202)
        assert serve.post(old_key, with_id(opened)) == 202  # in its grace
        revoked = run_cli(env, "sources", "revoke", "momentum")
        assert revoked.returncode == 0, revoked.stderr
        assert within(10, lambda: serve.post(new_key, with_id(opened)) == 401)
        assert serve.post(old_key, with_id(opened)) == 401
        assert serve.process.poll() is None
    finally:
        serve.stop()
    assert "sources_file_reloaded" in serve.log_path.read_text()

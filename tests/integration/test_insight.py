"""The audit sink and `advisering insight` on the real broker, with the demo scenario.

The worker runs the scenario; `advisering audit-sink` stores the audit topic;
`advisering insight --cpr` for each scenario citizen then lists exactly the
notifications the worker wrote about that citizen, and no CPR number lands
in the store, the logs or the output folder. Run for each audit store: a
SQLite file, and PostgreSQL (given as the inbox's database with
ADVISERING_AUDIT_DB unset, as the chart does), where every text column of the
audit tables is scanned for the numbers.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import orjson
from confluent_kafka import Producer

from advisering.audit.store import AuditStorage
from advisering.dev.scenario import DEMO_EXPECTED, demo_scenario, synthetic_cpr
from advisering.kafka.topics import AUDIT, DEAD_LETTERS, NOTIFICATIONS
from advisering.privacy import pseudonymise
from advisering.testing import end_offsets, kafka_at, read_topic
from tests.integration.bus import ROOT, WorkerProcess, run_cli, terminate
from tests.integration.test_pipeline import key_of, notifications_for, publish_waves
from tests.pg import open_audit, text_in_tables

NUMBERS = (11, 22, 33, 44, 55)


def _start_sink(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "advisering.cli", "audit-sink"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def _wait_for(db: Path | str, citizens: set[str], want: int, sink: subprocess.Popen[bytes],
              log_path: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sink.poll() is None, f"audit-sink exited:\n{log_path.read_text()[-3000:]}"
        if isinstance(db, str) or db.exists():
            store: AuditStorage = open_audit(db)
            found = len(store.disclosures(sorted(citizens), None, None, 1000))
            store.close()
            if found >= want:
                return
        time.sleep(0.5)
    raise AssertionError(f"the audit store did not fill:\n{log_path.read_text()[-3000:]}")


def _stored(db: Path | str) -> list[str]:
    """What the audit store holds, as text: its SQLite files, or its PostgreSQL tables' rows."""
    if isinstance(db, str):
        return [text_in_tables(db, ("audit_disclosures", "audit_lookups",
                                    "audit_schema_version"))]
    return [p.read_bytes().decode("latin-1") for p in db.parent.glob(db.name + "*")]


def test_insight_lists_exactly_each_citizens_notifications_and_writes_no_cpr(
    worker: WorkerProcess, topics_ready: str, tmp_path: Path, audit_db: Path | str,
) -> None:
    """Scenario -> worker -> audit-sink -> insight: each citizen's exact set; no CPR written."""
    bootstrap = topics_ready
    key = worker.env["ADVISERING_PSEUDONYM_KEY"]
    start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
    dead_start = end_offsets(kafka_at(bootstrap), DEAD_LETTERS)
    db, out_dir = audit_db, tmp_path / "out"
    out_dir.mkdir()
    # SQLite: the file named; PostgreSQL: the inbox's database, ADVISERING_AUDIT_DB unset.
    where = ({"ADVISERING_AUDIT_DB": str(db)} if isinstance(db, Path)
             else {"ADVISERING_INBOX_DB": db})
    env = dict(worker.env, **where, ADVISERING_AUDIT_SINK_WEB_PORT="0",
               ADVISERING_AUDIT_GROUP=f"audit-test-{uuid.uuid4().hex[:8]}")
    # A record that is no audit record: a dead letter, not a crash. (Not one with a CPR
    # number: test_pipeline checks that no topic ever holds one; the unit tests send those.)
    producer = Producer({"bootstrap.servers": bootstrap})
    marker = uuid.uuid4().hex
    producer.produce(AUDIT, key=b"x", value=orjson.dumps({"junk": marker}))
    assert producer.flush(30) == 0
    sink_log = tmp_path / "audit-sink.log"
    sink = _start_sink(env, sink_log)
    try:
        publish_waves(worker, bootstrap, tmp_path, demo_scenario())
        citizens = {n: pseudonymise(synthetic_cpr(n), key.encode()) for n in NUMBERS}
        found = notifications_for(bootstrap, start, set(citizens.values()))
        assert {key_of(n) for n in found} == DEMO_EXPECTED
        expected: dict[str, set[str]] = defaultdict(set)
        for notification in found:
            expected[notification["citizen"]].add(notification["id"])
        _wait_for(db, set(citizens.values()), len(found), sink, sink_log)
        logs: list[str] = []
        for number, citizen in citizens.items():
            result = run_cli(env, "insight", "--cpr", synthetic_cpr(number))
            assert result.returncode == 0, result.stderr
            report = orjson.loads(result.stdout)
            listed = {d["notification_id"] for d in report["disclosures"]}
            assert listed == expected[citizen], number
            assert all(d["rule_title"] and d["legal_basis"] for d in report["disclosures"])
            letter = out_dir / f"letter-{number}.html"
            html = run_cli(env, "insight", "--cpr", synthetic_cpr(number).replace("-", ""),
                           "--format", "html", "--out", str(letter))
            assert html.returncode == 0, html.stderr
            assert letter.read_text().count('<th scope="row">') == len(expected[citizen])
            logs += [result.stderr, html.stderr]
        dead = [orjson.loads(r.value or b"")
                for r in read_topic(kafka_at(bootstrap), DEAD_LETTERS, dead_start)]
        assert any(d["topic"] == AUDIT and d["reason"] == "invalid_field" and marker in d["payload"]
                   for d in dead)
        assert sink.poll() is None
    finally:
        terminate(sink)
    assert "audit_sink_stopped" in sink_log.read_text()  # SIGTERM: a clean stop
    forms = {f for n in NUMBERS for f in (synthetic_cpr(n),
                                                 synthetic_cpr(n).replace("-", ""))}
    written = [*logs, sink_log.read_text()]
    written += _stored(db)
    written += [p.read_text() + p.name for p in out_dir.iterdir()]
    assert any(citizens[NUMBERS[0]] in text for text in _stored(db))  # the scan reads rows
    for text in written:
        assert not [f for f in forms if f in text]
    store = open_audit(db)
    assert len(store.lookups(sorted(citizens.values()))) == 2 * len(NUMBERS)
    store.close()

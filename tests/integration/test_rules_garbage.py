"""Garbage on advisering.rules, written past the CLI, cannot stop workers from following sets."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import orjson
from confluent_kafka import Producer

from advisering.kafka.topics import RULES
from advisering.rulebook.deploy import MANIFEST_KEY
from tests.integration.bus import ROOT, WorkerProcess, bus_env, run_cli
from tests.integration.test_rules_deploy import deployed_version, rejected, wait_for_version

# Keys that are rule ids get a tombstone afterwards, so later runs do not see them.
GARBAGE: list[tuple[bytes, bytes]] = [
    (b"garbage-not-json", b"this is not JSON {"),
    (b"garbage-truncated", b'{"version": "v", "rule": {"id": "garbage-trunc'),
    (b"garbage-array", b'["a", "list"]'),
    (b"garbage-no-rule", orjson.dumps({"version": "v", "id": "garbage-no-rule"})),
    (MANIFEST_KEY.encode(), orjson.dumps({"version": "forged-no-rules"})),
    (b"\xff\xfe\xfdnot-utf8", orjson.dumps({"version": "v", "rule": {}})),
    (b"garbage-huge", b'{"version": "v", "rule": {"x": "' + b"y" * 600_000 + b'"}}'),
    (MANIFEST_KEY.encode(), orjson.dumps({"version": "forged-missing",
                                          "rules": {"garbage-missing": "0" * 64}})),
]


def invalid_records(worker: WorkerProcess) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in worker.metrics().splitlines()
               if line.startswith("advisering_ruleset_records_invalid_total{"))


def write_garbage(bootstrap: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000})
    for key, value in GARBAGE:
        producer.produce(RULES, key=key, value=value)
    assert producer.flush(30) == 0


def clean_up(bootstrap: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, _ in GARBAGE:
        if key.startswith(b"garbage-"):
            producer.produce(RULES, key=key, value=None)
    assert producer.flush(30) == 0


def test_workers_survive_garbage_on_the_rules_topic_and_follow_the_next_set(
    bootstrap: str, tmp_path: Path,
) -> None:
    """A running worker and one started after the garbage skip it, stay ready, follow a deploy."""
    env = bus_env(bootstrap)
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    running = WorkerProcess(env, tmp_path / "running.log")
    running.start()
    late = WorkerProcess(env, tmp_path / "late.log")
    try:
        rejected_before = rejected(running)
        invalid_before = invalid_records(running)  # earlier runs' garbage may still be there
        write_garbage(bootstrap)
        expected = invalid_before + len(GARBAGE) - 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and invalid_records(running) < expected:
            time.sleep(0.5)
        # Seven records are invalid; the manifest naming a missing rule is valid but incomplete.
        assert invalid_records(running) == expected, running.log_tail()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and rejected(running) <= rejected_before:
            time.sleep(0.5)
        assert rejected(running) > rejected_before
        assert running.readiness() == 200
        assert "advisering_rules_watcher_up 1.0" in running.metrics()
        log = running.log_path.read_text()
        assert '"event": "ruleset_record_invalid"' in log
        assert "yyyyyyyy" not in log and "this is not JSON" not in log  # no record content

        late.start()  # reads the garbage at start (initial_ruleset) and starts anyway
        assert invalid_records(late) >= len(GARBAGE) - 1
        # The last manifest there (unsigned) is refused at start: the late worker has its own.
        assert rejected(late, "signature") == 1
        assert 'advisering_ruleset_info{version="local"} 1.0' in late.metrics()

        candidate = tmp_path / "rules"
        shutil.copytree(ROOT / "rules", candidate)
        (candidate / "flytning-til-alle.yaml").unlink()
        deployed = run_cli(env, "rules", "deploy", str(candidate))
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        version = deployed_version(deployed.stdout)
        wait_for_version([running, late], version)
        for worker in (running, late):
            assert worker.process is not None and worker.process.poll() is None
            assert worker.readiness() == 200
            metrics = worker.metrics()
            assert "advisering_rules_watcher_up 1.0" in metrics
            assert "advisering_ruleset_rules 7.0" in metrics
            applied = [orjson.loads(line) for line in worker.log_path.read_text().splitlines()
                       if '"event": "ruleset_applied"' in line]
            assert [entry["version"] for entry in applied] == [version]
    finally:
        restored = run_cli(env, "rules", "deploy", str(ROOT / "rules"))
        clean_up(bootstrap)
        for worker in (running, late):
            worker.stop()
    assert restored.returncode == 0, restored.stdout + restored.stderr

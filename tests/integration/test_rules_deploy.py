"""Hot reload on the real broker: `rules deploy` switches running workers without restart."""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from pathlib import Path

import orjson
from confluent_kafka import Producer

from advisering.dev.scenario import DEMO_EXPECTED, demo_scenario
from advisering.kafka.topics import NOTIFICATIONS, RULES
from advisering.rulebook.deploy import MANIFEST_KEY, rule_hash
from advisering.testing import end_offsets, kafka_at
from tests.integration.bus import ROOT, WorkerProcess, bus_env, run_cli
from tests.integration.test_pipeline import (
    key_of,
    notifications_for,
    publish_waves,
    scenario_citizens,
)


def deployed_version(result_stdout: str) -> str:
    match = re.search(r"Deployed rule set (\S+)", result_stdout)
    assert match, result_stdout
    return match.group(1)


def wait_for_version(workers: list[WorkerProcess], version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(f'advisering_ruleset_info{{version="{version}"}} 1.0' in w.metrics()
               for w in workers):
            return
        time.sleep(0.5)
    raise AssertionError(f"workers did not switch to {version}")


def rejected(worker: WorkerProcess) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith("advisering_rulesets_rejected_total "):
            return float(line.split()[1])
    return 0.0


def test_deploy_switches_two_running_workers_and_refuses_invalid_sets(
    bootstrap: str, tmp_path: Path
) -> None:
    """A deployed set reaches both workers without restart; invalid sets change nothing."""
    env = bus_env(bootstrap)
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    workers = [WorkerProcess(env, tmp_path / f"worker-{n}.log") for n in range(2)]
    workers[1].app_id = workers[0].app_id  # one consumer group: they share the partitions
    # The second joins once the first has read the shared topic's backlog (every earlier
    # test's events): this test is about deploys. Joins during a backlog are the fault
    # tests' subject (docs/operators.md, "Known limit: a member joining during a backlog").
    workers[0].start()
    workers[0].wait_idle(bootstrap)
    workers[1].start()
    try:
        candidate = tmp_path / "rules"
        shutil.copytree(ROOT / "rules", candidate)
        (candidate / "flytning-til-alle.yaml").unlink()
        deployed = run_cli(env, "rules", "deploy", str(candidate))
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        version = deployed_version(deployed.stdout)
        status = run_cli(env, "rules", "status", str(candidate))
        assert f"Deployed rule set {version}" in status.stdout
        assert "flytning-til-alle" not in status.stdout
        assert "holds the deployed rules" in status.stdout
        wait_for_version(workers, version)

        # An invalid set is refused by the CLI and nothing reaches the topic.
        invalid = tmp_path / "invalid"
        shutil.copytree(candidate, invalid)
        broken = invalid / "doedsfald-til-alle.yaml"
        broken.write_text(broken.read_text().replace("legal_basis:", "hjemmel:"))
        before = end_offsets(kafka_at(bootstrap), RULES)
        refused = run_cli(env, "rules", "deploy", str(invalid))
        assert refused.returncode == 1
        assert "doedsfald-til-alle.yaml" in refused.stdout
        assert end_offsets(kafka_at(bootstrap), RULES) == before

        # A set written past the CLI, invalid, is refused by the workers themselves.
        bad_rule = {"id": "uden-hjemmel", "title": "Uden hjemmel", "notify": "related",
                    "when": {"type": "citizen.moved"}, "message": "Borgeren er flyttet."}
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(RULES, key=b"uden-hjemmel",
                         value=orjson.dumps({"version": "forged", "rule": bad_rule}))
        producer.produce(RULES, key=MANIFEST_KEY.encode(), value=orjson.dumps(
            {"version": "forged", "deployed": "2026-11-29T00:00:00+00:00",
             "rules": {"uden-hjemmel": rule_hash(bad_rule)}}))
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(rejected(w) >= 1 for w in workers):
            time.sleep(0.5)
        assert all(rejected(w) >= 1 for w in workers)
        wait_for_version(workers, version, timeout=5)

        # The next events are evaluated by the deployed set on both workers.
        start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
        try:
            publish_waves(workers[0], bootstrap, tmp_path, demo_scenario())
        except TimeoutError:
            for worker in workers:  # what each worker did, for the failure report
                print(f"--- {worker.log_path.name}\n{worker.log_tail(20000)}")
            raise
        found = notifications_for(bootstrap, start,
                                  scenario_citizens(env["ADVISERING_PSEUDONYM_KEY"]))
        expected = {k for k in DEMO_EXPECTED if k[0] != "flytning-til-alle"}
        assert Counter(key_of(n) for n in found) == Counter(dict.fromkeys(expected, 1))
    finally:
        # Leave the shipped rules deployed for whatever runs next on this broker.
        restored = run_cli(env, "rules", "deploy", str(ROOT / "rules"))
        for worker in workers:
            worker.stop()
    assert restored.returncode == 0, restored.stdout + restored.stderr

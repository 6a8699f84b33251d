"""Hot reload on the real broker: `rules deploy` switches running workers without restart.

Only signed sets: sets written past the CLI, invalid, unsigned, signed by
another key or with a rule changed after signing, are refused by the workers.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from advisering.dev.scenario import DEMO_EXPECTED, demo_scenario
from advisering.engine.rules import load_rules
from advisering.kafka.topics import NOTIFICATIONS, RULES, load_vocabulary
from advisering.rulebook.deploy import MANIFEST_KEY, rule_hash, rule_json, signed_manifest
from advisering.rulebook.signing import Signer, load_signer
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


def rejected(worker: WorkerProcess, reason: str | None = None) -> float:
    """The worker's rejected sets, for one reason or all."""
    prefix = "advisering_rulesets_rejected_total{"
    label = f'reason="{reason}"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in worker.metrics().splitlines()
               if line.startswith(prefix) and (reason is None or label in line))


FORGED_ID = "forfalsket-regel"


def publish_set(bootstrap: str, version: str, rule: dict[str, Any], signer: Signer | None,
                published: dict[str, Any] | None = None) -> None:
    """One rule and its manifest straight onto advisering.rules, past the CLI.

    ``signer`` None leaves the manifest unsigned; ``published`` is the rule
    record's content when it differs from the signed ``rule`` (tampering).
    """
    hashes = {rule["id"]: rule_hash(rule)}
    deployed = "2026-12-04T09:00:00+00:00"
    manifest = (signed_manifest(version, deployed, hashes, signer) if signer is not None
                else {"version": version, "deployed": deployed, "rules": hashes})
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(RULES, key=rule["id"].encode(), value=orjson.dumps(
        {"version": version, "rule": published if published is not None else rule}))
    producer.produce(RULES, key=MANIFEST_KEY.encode(), value=orjson.dumps(manifest))
    assert producer.flush(30) == 0


def wait_rejected(workers: list[WorkerProcess], reason: str, counts: list[float]) -> None:
    """Wait until every worker counted one more rejection for ``reason`` than ``counts``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
            rejected(w, reason) >= c + 1 for w, c in zip(workers, counts, strict=True)):
        time.sleep(0.5)
    assert [rejected(w, reason) for w in workers] == [c + 1 for c in counts], reason


def refuse_forged_sets(bootstrap: str, env: dict[str, str],
                       workers: list[WorkerProcess]) -> None:
    """Sets written past the CLI: invalid, unsigned, wrongly signed, tampered; all refused."""
    shipped = load_rules(ROOT / "rules", load_vocabulary(ROOT / "topics"))
    valid = dict(rule_json(shipped.rules[0]), id=FORGED_ID)
    bad_rule = {"id": FORGED_ID, "title": "Uden hjemmel", "notify": "related",
                "when": {"type": "citizen.moved"}, "message": "Borgeren er flyttet."}
    ours = load_signer(Path(env["ADVISERING_RULES_SIGNING_KEY_FILE"]))
    theirs = Signer(Ed25519PrivateKey.generate())
    tampered = dict(valid, message="Ændret efter underskriften.")
    cases = [
        ("forged-invalid", bad_rule, ours, None, "invalid"),  # signed, but does not validate
        ("forged-unsigned", valid, None, None, "signature"),
        ("forged-other-key", valid, theirs, None, "signature"),
        ("forged-tampered", valid, ours, tampered, "signature"),
    ]
    for version, rule, signer, published, reason in cases:
        counts = [rejected(w, reason) for w in workers]
        publish_set(bootstrap, version, rule, signer, published)
        wait_rejected(workers, reason, counts)
        for worker in workers:
            assert worker.readiness() == 200
            refusals = [orjson.loads(line) for line in worker.log_path.read_text().splitlines()
                        if '"event": "ruleset_rejected"' in line]
            assert (refusals[-1]["version"], refusals[-1]["reason"]) == (version, reason)
            assert "Ændret" not in worker.log_path.read_text()  # no rule content logged


def test_deploy_switches_two_running_workers_and_refuses_forged_sets(
    bootstrap: str, tmp_path: Path
) -> None:
    """A deployed set reaches both workers without restart; invalid or forged sets do not."""
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
        assert "verifies with ADVISERING_RULES_VERIFY_KEYS_FILE" in status.stdout
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

        # Sets written past the CLI are refused by the workers themselves.
        refuse_forged_sets(bootstrap, env, workers)
        wait_for_version(workers, version, timeout=5)
        status = run_cli(env, "rules", "status")
        assert "does NOT verify" in status.stdout, status.stdout

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

"""`advisering kafka` and `advisering topics apply` against a scratch broker of their own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.bus import ROOT, run_cli, scratch_broker_env

SCRATCH_PORT = int(os.environ.get("ADVISERING_TEST_SCRATCH_PORT", "19192"))


@pytest.fixture(scope="module")
def scratch_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for a second broker on its own port and state dir, stopped afterwards."""
    env = scratch_broker_env(SCRATCH_PORT, tmp_path_factory.mktemp("scratch-broker"))
    yield env
    run_cli(env, "kafka", "stop")


def test_start_twice_status_stop(scratch_env: dict[str, str]) -> None:
    """start runs a broker, a second start is a no-op, status sees it, stop ends it."""
    began = time.monotonic()
    first = run_cli(scratch_env, "kafka", "start")
    assert first.returncode == 0, first.stderr
    assert f"127.0.0.1:{SCRATCH_PORT}" in first.stdout
    assert "broker log:" in first.stdout
    warm_seconds = time.monotonic() - began

    second = run_cli(scratch_env, "kafka", "start")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout

    status = run_cli(scratch_env, "kafka", "status")
    assert status.returncode == 0
    assert "is running" in status.stdout

    stopped = run_cli(scratch_env, "kafka", "stop")
    assert stopped.returncode == 0
    assert "stopped" in stopped.stdout
    after = run_cli(scratch_env, "kafka", "status")
    assert after.returncode == 3
    assert "not running" in after.stdout
    print(f"scratch broker start took {warm_seconds:.1f}s")


def test_port_in_use_is_a_clear_error(scratch_env: dict[str, str]) -> None:
    """Starting on a port another process holds fails with what to do."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", SCRATCH_PORT))
        holder.listen(1)
        result = run_cli(scratch_env, "kafka", "start")
    assert result.returncode == 2
    assert "in use" in result.stderr
    assert "ADVISERING_KAFKA_PORT" in result.stderr


def test_missing_java_is_a_clear_error(scratch_env: dict[str, str], tmp_path: Path) -> None:
    """Without Java the start fails naming Java 17 and how to install it."""
    env = dict(scratch_env)
    env.pop("JAVA_HOME", None)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mvn",):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env["PATH"] = str(bin_dir)
    result = subprocess.run(
        [sys.executable, "-m", "advisering.cli", "kafka", "start"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )
    assert result.returncode == 2
    assert "Java 17" in result.stderr


def test_remote_bootstrap_starts_nothing(scratch_env: dict[str, str]) -> None:
    """ADVISERING_BOOTSTRAP_SERVERS pointing elsewhere means nothing starts locally."""
    env = dict(scratch_env, ADVISERING_BOOTSTRAP_SERVERS="kafka.kommune.example:9092")
    result = run_cli(env, "kafka", "start")
    assert result.returncode == 0
    assert "not starting a local broker" in result.stdout
    assert run_cli(scratch_env, "kafka", "status").returncode == 3


def test_topics_apply_create_unchanged_alter_and_refuse_shrink(
    scratch_env: dict[str, str], tmp_path: Path
) -> None:
    """apply creates (repartition topic: worker's partitions), unchanged, alters, refuses shrink."""
    assert run_cli(scratch_env, "kafka", "start", "--fresh").returncode == 0
    env = dict(scratch_env, ADVISERING_TOPIC_REPLICATION_FACTOR="1",
               ADVISERING_WORKER_APP_ID="apply-test", ADVISERING_WORKER_PARTITIONS="3")

    dry = run_cli(env, "topics", "apply", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("create") == 6
    assert "create     apply-test-citizen-events (partitions 3)" in dry.stdout
    assert "Dry run" in dry.stdout
    assert "ACLs: skipped, the broker has no authorizer" in dry.stdout  # acls.yaml checked

    created = run_cli(env, "topics", "apply")
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("create ") == 6

    again = run_cli(env, "topics", "apply")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("unchanged") == 6
    assert "Nothing to do" in again.stdout

    topics = tmp_path / "topics"
    shutil.copytree(ROOT / "topics", topics)
    audit = topics / "audit.yaml"
    audit.write_text(audit.read_text().replace("157680000000", "86400000"))
    altered = run_cli(env, "topics", "apply", "--dir", str(topics))
    assert altered.returncode == 0, altered.stderr
    assert "alter      advisering.audit (retention.ms: 157680000000 -> 86400000)" in altered.stdout
    assert run_cli(env, "topics", "apply", "--dir", str(topics)).stdout.count("unchanged") == 6

    events = topics / "case-events.yaml"
    events.write_text(events.read_text().replace("partitions: 6", "partitions: 2"))
    shrink = run_cli(env, "topics", "apply", "--dir", str(topics))
    assert shrink.returncode == 2
    assert "cannot shrink" in shrink.stderr


def test_replication_factor_above_broker_count_is_explained(scratch_env: dict[str, str]) -> None:
    """Declared replication factor 3 on a one-node broker fails with the override to use."""
    assert run_cli(scratch_env, "kafka", "start", "--fresh").returncode == 0
    result = run_cli(scratch_env, "topics", "apply")
    assert result.returncode == 2
    assert "--replication-factor 1" in result.stderr

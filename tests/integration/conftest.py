"""Integration tests run against the real local broker; they fail, never skip, without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from advisering.kafka import apply as topic_apply
from advisering.kafka.clients import broker_answers
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import load_topic_specs
from advisering.settings import Settings
from tests.integration.bus import WorkerProcess, bus_env, run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def bootstrap(settings: Settings) -> str:
    """The bootstrap address of a broker that answers, or a failed test saying what to do."""
    if not broker_answers(KafkaConnection.from_settings(settings), timeout=10.0):
        pytest.fail(
            f"No Kafka broker answers at {settings.bootstrap_servers}. Start one with "
            "`advisering kafka start` (make test does this for you)."
        )
    # Every test may rely on the five topics (a one-node broker: replication 1).
    specs = [spec.effective(None, 1) for spec in load_topic_specs(ROOT / "topics").values()]
    admin = topic_apply.admin_client(KafkaConnection.from_settings(settings))
    topic_apply.execute(admin, specs, topic_apply.plan(admin, specs))
    topic_apply.wait_for_leaders(admin, [spec.name for spec in specs])
    return settings.bootstrap_servers


@pytest.fixture(scope="session")
def topics_ready(bootstrap: str) -> str:
    """The bootstrap address once `advisering topics apply` ran (as an operator would)."""
    result = run_cli(bus_env(bootstrap), "topics", "apply", "--replication-factor", "1")
    assert result.returncode == 0, result.stderr
    return bootstrap


@pytest.fixture
def worker(topics_ready: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """An `advisering worker` subprocess with the test session's sources, stopped after."""
    process = WorkerProcess(bus_env(topics_ready), tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)

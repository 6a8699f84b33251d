"""Integration tests run against the real local broker; they fail, never skip, without it."""

from __future__ import annotations

import pytest

from advisering.broker.local_kafka import broker_answers
from advisering.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def bootstrap(settings: Settings) -> str:
    """The bootstrap address of a broker that answers, or a failed test saying what to do."""
    if not broker_answers(settings.bootstrap_servers, timeout=10.0):
        pytest.fail(
            f"No Kafka broker answers at {settings.bootstrap_servers}. Start one with "
            "`advisering kafka start` (make test does this for you)."
        )
    return settings.bootstrap_servers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)

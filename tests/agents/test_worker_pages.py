"""The worker's /healthz and /readyz pages, served by Faust's aiohttp app without a broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from advisering.dev.demo import write_demo_sources
from advisering.settings import Settings
from advisering.testing import load_matcher_and_vocabulary
from advisering.worker.app import WorkerApp, create_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[WorkerApp]:
    settings = Settings(
        bootstrap_servers="127.0.0.1:1", pseudonym_key="pages-tests-pseudonym-key-of-32-bytes",
        rules_dir=ROOT / "rules", topics_dir=ROOT / "topics",
        worker_app_id="advisering-page-tests", worker_data_dir=tmp_path / "worker",
        sources_file=tmp_path / "sources.yaml",
    )
    matcher, vocabulary = load_matcher_and_vocabulary(settings)
    write_demo_sources(settings.sources_file, vocabulary)
    yield create_app(settings, matcher, vocabulary)


@pytest.fixture
async def client(worker: WorkerApp) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with TestClient(TestServer(worker.app.web.web_app)) as test_client:  # type: ignore[attr-defined]
        yield test_client


def recovered(worker: WorkerApp) -> None:
    worker.app.tables.recovery.completed.set()


async def test_healthz_answers_200_until_the_app_crashes_then_503(
    worker: WorkerApp, client: TestClient,  # type: ignore[type-arg]
) -> None:
    """/healthz is alive until app.crash(...); from that moment it answers 503 crashed."""
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "alive"}
    await worker.app.crash(RuntimeError("a refused send"))
    response = await client.get("/healthz")
    assert response.status == 503
    assert await response.json() == {"status": "crashed"}


async def test_readyz_is_503_when_the_rules_watcher_ended(
    worker: WorkerApp, client: TestClient,  # type: ignore[type-arg]
) -> None:
    """Recovered and assigned, /readyz is 200 while the watcher runs and 503 once it ended."""
    recovered(worker)
    alive = [True]
    worker.status.watcher_alive = lambda: alive[0]
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["rules_watcher"] == "up"
    alive[0] = False
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["ready"] is False
    assert body["rules_watcher"] == "ended"


async def test_readyz_is_503_after_a_crash(
    worker: WorkerApp, client: TestClient,  # type: ignore[type-arg]
) -> None:
    """A crashed worker is not ready either."""
    recovered(worker)
    assert (await client.get("/readyz")).status == 200
    await worker.app.crash(RuntimeError("a fatal agent error"))
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["crashed"] is True

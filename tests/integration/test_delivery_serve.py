"""Delivery channels in the served inbox on the real broker: once per id; failures dead-lettered."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from advisering.dev.scenario import demo_scenario
from advisering.http.server import create_web_app
from advisering.inbox.service import STORE
from advisering.kafka.topics import DEAD_LETTERS
from advisering.settings import Settings
from advisering.testing import end_offsets, kafka_at, read_topic
from tests.integration.bus import WorkerProcess, bus_env, run_cli, write_jsonl
from tests.integration.test_pipeline import scenario_citizens

SECRET = "webhook-secret-0123456789-0123456789abcdef"


@dataclass
class Receiver:
    """A local webhook endpoint answering ``status``; keeps every attempt."""

    status: int
    attempts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts.append((request.headers["Idempotency-Key"],
                              orjson.loads(await request.read())))
        return web.Response(status=self.status)

    def about(self, citizens: set[str]) -> list[tuple[str, dict[str, Any]]]:
        """Attempts for this test's citizens (the topic may hold other runs' notifications)."""
        return [(key, body) for key, body in self.attempts if body.get("citizen") in citizens]


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    good, bad = Receiver(202), Receiver(500)
    servers = []
    for receiver in (good, bad):
        app = web.Application()
        app.router.add_post("/advis", receiver.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        receiver.url = str(server.make_url("/advis"))
        servers.append(server)
    yield good, bad
    for server in servers:
        await server.close()


def channels_file(path: Path, good: str, good_url: str, bad: str, bad_url: str) -> Path:
    webhook = {"secret": SECRET, "include_citizen": True, "timeout": 5.0}
    document = {"channels": [
        {"name": good, "match": {"department": "boern-familie"},
         "webhook": dict(webhook, url=good_url)},
        {"name": bad, "match": {"department": "skole"},
         "webhook": dict(webhook, url=bad_url, max_attempts=2, initial_backoff=0.01,
                         max_backoff=0.01)},
    ]}
    path.write_bytes(orjson.dumps(document))  # JSON is YAML
    return path


async def eventually(condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.25)


async def test_webhooks_deliver_once_and_failures_reach_the_dead_letters(
    bootstrap: str, tmp_path: Path, receivers: tuple[Receiver, Receiver],
) -> None:
    """Worker output reaches the department's webhook once per id; a 500 endpoint dead-letters."""
    good, bad = receivers
    suffix = uuid.uuid4().hex[:8]
    good_name, bad_name = f"bf-fagsystem-{suffix}", f"skole-broken-{suffix}"
    env = bus_env(bootstrap)
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    citizens = scenario_citizens(env["ADVISERING_PSEUDONYM_KEY"])
    settings = Settings(
        bootstrap_servers=bootstrap, token_secret=secrets.token_hex(32),
        inbox_db=tmp_path / "inbox.sqlite3", inbox_group=f"inbox-delivery-{suffix}",
        channels_file=channels_file(tmp_path / "channels.yaml", good_name, good.url, bad_name,
                                    bad.url),
    )
    dead_start = end_offsets(kafka_at(bootstrap), DEAD_LETTERS)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    app = create_web_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        for number, wave in enumerate(demo_scenario()):
            path = write_jsonl(tmp_path / f"wave-{number}.jsonl", wave)
            assert run_cli(env, "publish", str(path)).returncode == 0
            worker.wait_idle(bootstrap)

        # Three notifications of the scenario go to boern-familie (DEMO_EXPECTED).
        await eventually(lambda: len({k for k, _ in good.about(citizens)}) >= 3)
        await eventually(lambda: len(bad.about(citizens)) >= 2)
        letters: list[dict[str, Any]] = []

        def dead_lettered() -> bool:
            records = read_topic(kafka_at(bootstrap), DEAD_LETTERS, dead_start, timeout=5.0)
            letters[:] = [orjson.loads(r.value or b"") for r in records]
            letters[:] = [x for x in letters if x.get("channel") == bad_name]
            return bool(letters)

        await eventually(dead_lettered)
        await asyncio.sleep(2.0)  # room for a duplicate to show up, if there were one

        delivered = good.about(citizens)
        by_key = Counter(key for key, _ in delivered)
        assert len(by_key) == 3
        assert set(by_key.values()) == {1}, by_key
        assert all(key == body["id"] for key, body in delivered)
        assert {body["recipient"]["department"] for _, body in delivered} == {"boern-familie"}
        assert sorted(body["rule"] for _, body in delivered) == [
            "ny-boernesag-orientering", "ny-boernesag-orientering", "sanktion-til-boernesag"]

        school_ids = {body["id"] for _, body in bad.about(citizens)}
        assert len(school_ids) == 1
        [school_id] = school_ids
        assert len(bad.about(citizens)) == 2  # max_attempts
        mine = [x for x in letters if x["notification_id"] == school_id]
        assert len(mine) == 1
        letter = mine[0]
        assert letter["reason"] == "webhook_failed"
        assert letter["source"] == "advisering.delivery"
        assert letter["attempts"] == 2
        assert letter["last_error"] == "http_500"
        assert letter["recipient"]["unit"] == "pps"
        assert "citizen" not in letter and "message" not in letter

        store = app[STORE]
        for key in by_key:
            assert await store.deliveries(key) == {good_name: ("settled", "delivered")}
        assert await store.deliveries(school_id) == {bad_name: ("settled", "dead_lettered")}
    finally:
        await client.close()
        worker.stop()

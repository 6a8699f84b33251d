"""What sharing one store needs: the NOTIFY payload carries no citizen data, a stream on one
replica sees what another stored, and a batch the store refused is consumed again."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import orjson
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import TopicPartition

from advisering.engine.notification import Notification
from advisering.http.server import create_web_app
from advisering.inbox import tokens
from advisering.inbox.consumer import NotificationConsumer
from advisering.inbox.postgres import CHANNEL
from advisering.inbox.service import STORE
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import NOTIFICATIONS
from advisering.settings import Settings
from tests.pg import open_store

SECRET = "s" * 32
PSEUDONYM = "ps1-" + "c" * 52


def note(nid: str, caseworker: str | None = "bf-0042") -> Notification:
    created = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC).isoformat()
    return Notification.from_json({
        "id": nid, "rule": "sanktion-til-boernesag", "title": "Sanktion", "severity": "high",
        "recipient": {"caseworker": caseworker, "unit": "bf-syd", "department": "boern-familie"},
        "related_case": {"id": "DUBU-1", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": "e1", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": created},
        "citizen": PSEUDONYM, "message": "Borgeren i din sag DUBU-1 har fået en sanktion",
        "legal_basis": "Barnets lov", "created": created,
    })


async def test_the_announcement_holds_the_id_and_routing_keys_only(pg_url: str) -> None:
    """NOTIFY carries the notification id and recipient keys: no pseudonym, no message."""
    store = await open_store(pg_url)
    listener = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        await listener.execute(f"LISTEN {CHANNEL}")
        await store.add_many([note("n-1"), note("n-1")])  # a repeat announces nothing
        payloads = [n.payload async for n in listener.notifies(timeout=2)]
    finally:
        await listener.close()
        await store.close()
    assert [orjson.loads(p) for p in payloads] == [
        {"id": "n-1", "department": "boern-familie", "unit": "bf-syd", "caseworker": "bf-0042"}]
    assert PSEUDONYM not in payloads[0] and "sanktion" not in payloads[0]


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[list[TestClient[Any, Any]]]:
    """Two inbox apps (no consumer) on one PostgreSQL database."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", token_secret=SECRET, inbox_db=pg_url)
    clients = [TestClient(TestServer(create_web_app(settings, consume=False)))
               for _ in range(2)]
    for client in clients:
        await client.start_server()
    yield clients
    for client in clients:
        await client.close()


async def test_a_stream_on_one_replica_shows_what_another_stored(
    replicas: list[TestClient[Any, Any]],
) -> None:
    """Stored through replica B, the notification reaches the stream open on replica A once;
    read state set on A is seen by B."""
    a, b = replicas
    token = tokens.issue(SECRET.encode(), "bf-0042", "boern-familie", "bf-syd")
    stream = await a.get(f"/api/v1/stream?access_token={token}")
    assert (await stream.content.readline()).startswith(b": connected")
    await stream.content.readline()
    await asyncio.sleep(0.3)  # A's LISTEN is up
    await b.server.app[STORE].add_many([note("other-1", "bf-9999"), note("n-b")])
    lines = [await asyncio.wait_for(stream.content.readline(), 5) for _ in range(4)]
    assert lines[:2] == [b"event: notification\n", b"id: n-b\n"] and lines[3] == b"\n"
    assert PSEUDONYM.encode() not in lines[2]
    with pytest.raises(TimeoutError):  # no second copy of it, and nothing of bf-9999's
        await asyncio.wait_for(stream.content.readline(), 1)
    stream.close()
    auth = {"Authorization": f"Bearer {token}"}
    assert (await a.post("/api/v1/notifications/n-b/read", headers=auth)).status == 200
    item = await (await b.get("/api/v1/notifications/n-b", headers=auth)).json()
    assert item["read_at"]


class FakeKafka:
    """The consumer's Kafka client: hands out one batch, records commits and seeks."""

    def __init__(self, values: list[bytes]) -> None:
        self.values, self.commits, self.seeks = values, 0, []  # type: list[TopicPartition]

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        return [FakeMessage(v) for v in self.values]

    def commit(self, asynchronous: bool) -> None:
        self.commits += 1

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(NOTIFICATIONS, 0), TopicPartition(NOTIFICATIONS, 1)]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(NOTIFICATIONS, 0, 17), TopicPartition(NOTIFICATIONS, 1, -1001)]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp)


class FakeMessage:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value


class RefusingStore:
    """A store whose database is away for the first ``failures`` batches."""

    shared = True

    def __init__(self, failures: int) -> None:
        self.failures, self.stored = failures, []  # type: int, list[Notification]

    async def add_many(self, notifications: list[Notification], **_: Any) -> list[Notification]:
        if self.failures:
            self.failures -= 1
            raise psycopg.OperationalError("the database is away")
        self.stored.extend(notifications)
        return notifications


async def test_a_batch_the_store_refused_is_not_committed_and_comes_again() -> None:
    """Store down: no commit, back to the committed offsets; store back: stored, committed."""
    store = RefusingStore(failures=1)
    consumer = NotificationConsumer(KafkaConnection.plaintext("127.0.0.1:1"),
                                    "g", store)  # type: ignore[arg-type]
    fake = FakeKafka([note("n-1").encode()])
    consumer._consumer = fake  # type: ignore[assignment]  # noqa: SLF001
    consumer._loop = asyncio.get_running_loop()  # noqa: SLF001
    consumer._poller.pause = lambda _seconds: None  # type: ignore[method-assign]  # noqa: SLF001
    await asyncio.to_thread(consumer._step)  # noqa: SLF001
    assert fake.commits == 0 and store.stored == []
    assert [(tp.partition, tp.offset) for tp in fake.seeks] == [(0, 17), (1, -2)]
    await asyncio.to_thread(consumer._step)  # noqa: SLF001
    assert fake.commits == 1 and [n.id for n in store.stored] == ["n-1"]


async def test_a_lost_listen_connection_is_made_again(
    replicas: list[TestClient[Any, Any]], pg_url: str,
) -> None:
    """The database ends replica A's LISTEN session: A listens again and its stream goes on."""
    a, b = replicas
    token = tokens.issue(SECRET.encode(), "bf-0042", "boern-familie", "bf-syd")
    stream = await a.get(f"/api/v1/stream?access_token={token}")
    await stream.content.readline()
    await stream.content.readline()
    await asyncio.sleep(0.3)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' "
            "AND datname = current_database()")
        assert len(await cur.fetchall()) == 2  # both replicas' sessions
    deadline = asyncio.get_running_loop().time() + 10
    lines: list[bytes] = []
    number = 0
    while not any(line.startswith(b"id: ") for line in lines):
        assert asyncio.get_running_loop().time() < deadline, "no notification after the loss"
        number += 1
        await b.server.app[STORE].add_many([note(f"after-{number}")])
        try:
            lines.append(await asyncio.wait_for(stream.content.readline(), 1))
        except TimeoutError:
            continue
    stream.close()

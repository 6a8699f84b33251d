"""Two `serve` replicas on one PostgreSQL and the real broker: one consumer group, one store.

The scenario's notifications are split between the replicas (each is given
partitions and stores some), a caseworker's live stream on replica A shows
a notification that replica B stored (PostgreSQL LISTEN/NOTIFY), and after
replica B is frozen and SIGKILLed with notifications still unconsumed, replica A takes
its partitions over and every notification is in the store exactly once.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import orjson
import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from advisering.dev.scenario import demo_scenario
from advisering.inbox import tokens
from advisering.kafka.topics import NOTIFICATIONS
from advisering.testing import end_offsets, kafka_at
from tests.integration.bus import WorkerProcess, bus_env, run_cli, write_jsonl
from tests.integration.test_inbox import notification_record
from tests.integration.test_pipeline import notifications_for, scenario_citizens
from tests.integration.test_sources_live import Serve

SECRET = secrets.token_hex(32)
STORED = "advisering_inbox_notifications_stored_total"
BURST = 60


def stored_count(serve: Serve) -> float:
    """The replica's count of notifications it stored first (its /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{serve.port}/metrics", timeout=5) as reply:
        page = bytes(reply.read()).decode()
    for line in page.splitlines():
        if line.startswith(STORED + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def assignments(bootstrap: str, group: str) -> list[set[int]]:
    """The partitions of the notifications topic each member of ``group`` holds."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.describe_consumer_groups([group]).values()
    description = future.result(timeout=10)
    return [{tp.partition for tp in m.assignment.topic_partitions if tp.topic == NOTIFICATIONS}
            for m in description.members]


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout} s: {what}")


def stored_ids(url: str, ids: set[str]) -> dict[str, int]:
    """How many rows the store holds of each of ``ids`` (the primary key allows one)."""
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT id, COUNT(*) FROM notifications WHERE id = ANY(%s) "
                          "GROUP BY id", (list(ids),)).fetchall()
    return {str(i): int(n) for i, n in rows}


def produce(bootstrap: str, records: list[tuple[int, str, str]]) -> None:
    """Write notifications (partition, caseworker, id) straight to the topic, durably."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for partition, caseworker, nid in records:
        producer.produce(NOTIFICATIONS, key=caseworker.encode(),
                         value=notification_record(caseworker, nid), partition=partition)
    assert producer.flush(30) == 0


async def test_two_replicas_share_the_store_the_streams_and_survive_a_kill(
    bootstrap: str, tmp_path: Path, pg_url: str,
) -> None:
    """Two serve replicas on one PostgreSQL: split consumption, cross-replica SSE, no loss."""
    group = f"inbox-replicas-{uuid.uuid4().hex[:8]}"
    env = bus_env(bootstrap, ADVISERING_TOKEN_SECRET=SECRET, ADVISERING_INBOX_DB=pg_url,
                  ADVISERING_INBOX_GROUP=group,
                  ADVISERING_TOKEN_REVOCATION_FILE=str(tmp_path / "revocations.jsonl"))
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    assert run_cli(env, "db", "migrate").returncode == 0
    worker = WorkerProcess(env, tmp_path / "worker.log")
    a = Serve(env, tmp_path / "serve-a.log")
    b = Serve(env, tmp_path / "serve-b.log")
    try:
        worker.start()
        a.wait_ready()
        b.wait_ready()
        # One group, both replicas holding partitions (6 partitions, 2 members).
        wait_for(lambda: sorted(len(p) > 0 for p in assignments(bootstrap, group))
                 == [True, True], 90, "both replicas hold partitions")
        owned = assignments(bootstrap, group)
        assert set().union(*owned) == set(range(6)) and not owned[0] & owned[1]

        # The demo scenario through the worker: all of it stored once, across the replicas.
        start = end_offsets(kafka_at(bootstrap), NOTIFICATIONS)
        for number, wave in enumerate(demo_scenario()):
            path = write_jsonl(tmp_path / f"wave-{number}.jsonl", wave)
            assert run_cli(env, "publish", str(path)).returncode == 0
            worker.wait_idle(bootstrap)
        citizens = scenario_citizens(env["ADVISERING_PSEUDONYM_KEY"])
        scenario = {n["id"] for n in notifications_for(bootstrap, start, citizens)}
        assert scenario
        wait_for(lambda: stored_ids(pg_url, scenario) == dict.fromkeys(scenario, 1), 60,
                 "the scenario's notifications stored")

        # Probes: one notification per partition, to learn which replica stores which.
        owner: dict[int, Serve] = {}
        for partition in range(6):
            before = (stored_count(a), stored_count(b))
            produce(bootstrap, [(partition, "bf-probe", f"probe-{partition}-{uuid.uuid4()}")])
            wait_for(lambda: (stored_count(a), stored_count(b)) != before, 60,  # noqa: B023
                     f"partition {partition} consumed")
            owner[partition] = a if stored_count(a) > before[0] else b
        assert {id(s) for s in owner.values()} == {id(a), id(b)}  # rows came through both
        b_partition = next(p for p, s in owner.items() if s is b)

        # A caseworker's stream on A shows a notification stored through B.
        caseworker, live_id = f"bf-live-{uuid.uuid4().hex[:6]}", f"live-{uuid.uuid4()}"
        token = tokens.issue(SECRET.encode(), caseworker, "boern-familie", "bf-syd")
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{a.port}/api/v1/stream",
                params={"access_token": token}) as stream:
            assert stream.status == 200
            assert await stream.content.readline() == b": connected\n"
            a_before, b_before = stored_count(a), stored_count(b)
            produce(bootstrap, [(b_partition, caseworker, live_id)])
            data = b""
            deadline = time.monotonic() + 30
            while not data.startswith(b"data: ") and time.monotonic() < deadline:
                data = await asyncio.wait_for(stream.content.readline(), 30)
            assert orjson.loads(data[6:])["id"] == live_id
            assert "citizen" not in orjson.loads(data[6:])
        assert (stored_count(a), stored_count(b)) == (a_before, b_before + 1)

        # B frozen (SIGSTOP), notifications written to every partition, then B SIGKILLed:
        # what B was given but never stored, A takes over; none is lost.
        b.process.send_signal(signal.SIGSTOP)
        a_before = stored_count(a)
        burst = [(p, f"bf-burst-{i % 7}", f"burst-{i}-{uuid.uuid4()}")
                 for i, p in enumerate(p for p in range(6) for _ in range(BURST // 6))]
        produce(bootstrap, burst)
        b.process.kill()
        b.process.wait(timeout=10)
        expected = scenario | {nid for _, _, nid in burst} | {live_id}
        # B's session expires after 45 s (librdkafka's default); A then consumes the rest.
        wait_for(lambda: stored_ids(pg_url, expected) == dict.fromkeys(expected, 1), 150,
                 "every notification stored once after the kill")
        assert stored_count(a) == a_before + BURST  # B's share too, through A
        assert assignments(bootstrap, group)[0] == set(range(6))
    finally:
        a.stop()
        b.stop()
        worker.stop()

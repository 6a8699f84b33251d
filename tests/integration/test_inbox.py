"""The inbox on the real broker: worker notifications land in the right inbox once, survive a
restart of the service, and the live stream delivers a new one."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Consumer, Producer, TopicPartition

from advisering.dev.scenario import demo_scenario, event, synthetic_cpr
from advisering.engine.notification import Notification
from advisering.http.server import create_web_app
from advisering.inbox import tokens
from advisering.inbox.service import STORE
from advisering.inbox.store import Viewer
from advisering.kafka.topics import NOTIFICATIONS
from advisering.settings import Settings
from tests.integration.bus import WorkerProcess, bus_env, run_cli, write_jsonl
from tests.integration.test_pipeline import scenario_citizens
from tests.integration.test_sources_live import Serve

SECRET = secrets.token_hex(32)


async def start_inbox(bootstrap: str, db: Path, group: str) -> TestClient[Any, Any]:
    settings = Settings(bootstrap_servers=bootstrap, token_secret=SECRET, inbox_db=db,
                        inbox_group=group)
    client = TestClient(TestServer(create_web_app(settings)))
    await client.start_server()
    return client


DEPARTMENTS = {"bf": "boern-familie", "sk": "skole"}
"""The department of a test caseworker, by the prefix of their id (as in the scenario)."""


def department(caseworker: str) -> str:
    return DEPARTMENTS[caseworker.split("-", 1)[0]]


def bearer(caseworker: str, unit: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + tokens.issue(SECRET.encode(), caseworker,
                                                      department(caseworker), unit)}


async def mine(client: TestClient[Any, Any], caseworker: str, unit: str,
               citizens: set[str], want: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The viewer's notifications about ``citizens``, once at least ``want`` are there.

    The API never answers the pseudonym, so which notifications are about
    ``citizens`` is looked up in the store (the test's own knowledge).
    """
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    viewer = Viewer(department(caseworker), caseworker, unit)
    while time.monotonic() < deadline:
        reply = await client.get("/api/v1/notifications?limit=200",
                                 headers=bearer(caseworker, unit))
        assert reply.status == 200
        items = (await reply.json())["items"]
        assert all("citizen" not in n for n in items)
        ours = {i.body["id"] for i in (await client.server.app[STORE].list(viewer, limit=200))[0]
                if i.body["citizen"] in citizens}
        found = [n for n in items if n["id"] in ours]
        if len(found) >= want:
            return found
        await asyncio.sleep(0.5)
    return found


async def test_notifications_reach_the_inbox_once_and_survive_restart(
    bootstrap: str, tmp_path: Path
) -> None:
    """Worker output lands in the right inbox once, keeps read state over a restart, and streams."""
    env = bus_env(bootstrap)
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    db, group = tmp_path / "inbox.sqlite3", f"inbox-test-{uuid.uuid4().hex[:8]}"
    citizens = scenario_citizens(env["ADVISERING_PSEUDONYM_KEY"])
    client = await start_inbox(bootstrap, db, group)
    try:
        for number, wave in enumerate(demo_scenario()):
            path = write_jsonl(tmp_path / f"wave-{number}.jsonl", wave)
            assert run_cli(env, "publish", str(path)).returncode == 0
            worker.wait_idle(bootstrap)
        bf = await mine(client, "bf-0042", "bf-syd", citizens, 2)
        assert sorted(n["rule"] for n in bf) == ["ny-boernesag-orientering",
                                                 "sanktion-til-boernesag"]
        school = await mine(client, "sk-9999", "pps", citizens, 1)
        assert [n["related_case"]["id"] for n in school] == ["SKOLE-2026-0042"]
        sanction = next(n for n in bf if n["rule"] == "sanktion-til-boernesag")
        reply = await client.post(f"/api/v1/notifications/{sanction['id']}/read",
                                  headers=bearer("bf-0042", "bf-syd"))
        assert reply.status == 200
        await client.close()

        # Restart: same database, same consumer group.
        client = await start_inbox(bootstrap, db, group)
        await asyncio.sleep(3)
        after = await mine(client, "bf-0042", "bf-syd", citizens, 2)
        assert sorted(n["id"] for n in after) == sorted(n["id"] for n in bf)
        assert next(n for n in after if n["id"] == sanction["id"])["read_at"]

        # The live stream delivers a new notification.
        token = tokens.issue(SECRET.encode(), "bf-0099", "boern-familie", "bf-vest")
        stream = await client.get(f"/api/v1/stream?access_token={token}")
        assert stream.status == 200
        await stream.content.readline()
        new_case = {"id": f"DUBU-LIVE-{uuid.uuid4().hex[:6]}", "kle": "34.15.00",
                    "status": "opstaaet", "department": "boern-familie", "unit": "bf-vest",
                    "caseworker": "bf-0099"}
        # The parent of the scenario (open job-centre case) gets a new children's case.
        live = event(99, "dubu", "case.opened", dt.datetime.now(dt.UTC), synthetic_cpr(11),
                     new_case)
        live["id"] = str(uuid.uuid4())
        path = write_jsonl(tmp_path / "live.jsonl", [live])
        assert run_cli(env, "publish", str(path)).returncode == 0
        lines: list[bytes] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(b"data: " in x for x in lines):
            lines.append(await asyncio.wait_for(stream.content.readline(), 60))
        data = next(x for x in lines if x.startswith(b"data: "))
        assert b"ny-boernesag-orientering" in data
        assert new_case["id"].encode() in data
        stream.close()
    finally:
        await client.close()
        worker.stop()


def notification_record(caseworker: str, nid: str) -> bytes:
    """A notification for ``caseworker`` as the worker writes it (the inbox's own model)."""
    created = dt.datetime.now(dt.UTC).isoformat()
    return Notification.from_json({
        "id": nid, "rule": "sanktion-til-boernesag", "title": "Sanktion", "severity": "high",
        "recipient": {"caseworker": caseworker, "unit": "bf-syd", "department": "boern-familie"},
        "related_case": {"id": "DUBU-2025-0815", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": str(uuid.uuid4()), "source": "momentum",
                    "type": "benefit.changed", "department": "jobcenter", "time": created},
        "citizen": "ps1-" + "d" * 52, "message": "Borgeren i din sag DUBU-2025-0815 ...",
        "legal_basis": "Barnets lov", "created": created,
    }).encode()


def produce_copies(bootstrap: str, key: bytes, value: bytes, copies: int) -> tuple[int, int]:
    """Write ``copies`` records of one notification, as a retried produce would.

    Returns the partition and the offset of the last copy.
    """
    producer = Producer({"bootstrap.servers": bootstrap})
    written: list[tuple[int, int]] = []
    for _ in range(copies):
        producer.produce(NOTIFICATIONS, key=key, value=value,
                         on_delivery=lambda _e, m: written.append((m.partition(), m.offset())))
    assert producer.flush(30) == 0
    return written[-1]


async def committed_past(bootstrap: str, group: str, partition: int, offset: int) -> bool:
    """Wait until ``group`` has committed past ``offset`` on ``partition`` of the topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [tp] = consumer.committed([TopicPartition(NOTIFICATIONS, partition)], timeout=10)
            if tp.offset > offset:
                return True
            await asyncio.sleep(0.5)
        return False
    finally:
        consumer.close()


async def stored_ids(client: TestClient[Any, Any], caseworker: str, want: int) -> list[str]:
    """The ids in ``caseworker``'s inbox, once there are ``want`` (or after 60 s)."""
    ids: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(ids) < want:
        reply = await client.get("/api/v1/notifications", headers=bearer(caseworker, "bf-syd"))
        ids = [n["id"] for n in (await reply.json())["items"]]
        await asyncio.sleep(0.5)
    return ids


async def test_a_notification_written_three_times_is_stored_once(
    bootstrap: str, tmp_path: Path
) -> None:
    """Copies of one notification id (a retried produce, a replayed batch) are stored once."""
    caseworker, nid = f"bf-dup-{uuid.uuid4().hex[:8]}", f"dup-{uuid.uuid4()}"
    key, value = caseworker.encode(), notification_record(caseworker, nid)
    db, group = tmp_path / "inbox.sqlite3", f"inbox-dup-{uuid.uuid4().hex[:8]}"
    produce_copies(bootstrap, key, value, 2)  # two copies, most likely read in one batch
    client = await start_inbox(bootstrap, db, group)
    try:
        assert await stored_ids(client, caseworker, 1) == [nid]
        partition, last = produce_copies(bootstrap, key, value, 1)  # one more, after it
        # The inbox commits a batch only after storing it: past the copy, it has seen it.
        assert await committed_past(bootstrap, group, partition, last)
        assert await stored_ids(client, caseworker, 1) == [nid]
    finally:
        await client.close()


async def test_running_serve_refuses_revoked_foreign_and_long_lived_tokens(
    bootstrap: str, tmp_path: Path
) -> None:
    """`advisering serve` closes a revoked token's stream and refuses it without a restart;
    foreign audience or issuer and over-long tokens signed with its secret are 401."""
    env = bus_env(bootstrap, ADVISERING_TOKEN_SECRET=SECRET,
                  ADVISERING_INBOX_DB=str(tmp_path / "inbox" / "inbox.sqlite3"),
                  ADVISERING_INBOX_GROUP=f"inbox-test-{uuid.uuid4().hex[:8]}")
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    issued = run_cli(env, "token", "issue", "--caseworker", "bf-0042", "--department",
                     "boern-familie", "--unit", "bf-syd", "--hours", "1")
    assert issued.returncode == 0, issued.stderr
    token, jti = issued.stdout.strip(), issued.stderr.strip().rsplit(" ", 1)[-1]
    now = int(time.time())
    honest = {"iss": "advisering", "aud": "advisering-inbox", "sub": "bf-0042",
              "dept": "boern-familie", "iat": now, "exp": now + 600, "jti": "forged-1"}
    forged = [tokens.sign(SECRET.encode(), dict(honest, **change)) for change in (
        {"aud": "another-service"}, {"iss": "evil"}, {"exp": now + 43_201},
        {"nbf": now + 3600})]
    serve = Serve(env, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        base = f"http://127.0.0.1:{serve.port}"
        async with aiohttp.ClientSession() as session:
            async def me(value: str) -> int:
                async with session.get(f"{base}/api/v1/me",
                                       headers={"Authorization": f"Bearer {value}"}) as reply:
                    return reply.status

            assert await me(token) == 200
            assert await me(tokens.sign(SECRET.encode(), honest)) == 200  # the control
            assert [await me(f) for f in forged] == [401] * 4
            async with session.get(f"{base}/api/v1/stream",
                                   params={"access_token": token}) as stream:
                assert stream.status == 200
                assert await stream.content.readline() == b": connected\n"
                revoked = run_cli(env, "token", "revoke", jti, "--reason", "test")
                assert revoked.returncode == 0, revoked.stderr
                rest = await asyncio.wait_for(stream.content.read(), 15)
            assert b"event: revoked\n" in rest
            assert await me(token) == 401
        assert serve.process.poll() is None
    finally:
        serve.stop()

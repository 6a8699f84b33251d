"""The inbox with token revocation and bounded live streams, served (no broker needed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from advisering.engine.notification import Notification
from advisering.http.server import create_web_app
from advisering.inbox import tokens
from advisering.inbox.migrations import SQLITE_MIGRATIONS, Migrated
from advisering.inbox.revocation import revoke
from advisering.inbox.service import BROADCAST, STORE
from advisering.inbox.store import InboxStore, Viewer
from advisering.settings import Settings

SECRET = b"s" * 32
PSEUDONYM = "ps1-" + "a" * 52


def note(nid: str, caseworker: str | None, unit: str, department: str) -> Notification:
    created = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC).isoformat()
    return Notification.from_json({
        "id": nid, "rule": "sanktion-til-boernesag", "title": "Sanktion", "severity": "high",
        "recipient": {"caseworker": caseworker, "unit": unit, "department": department},
        "related_case": {"id": f"CASE-{nid}", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": "e1", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": created},
        "citizen": PSEUDONYM, "message": f"Borgeren i din sag CASE-{nid} ...",
        "legal_basis": "Barnets lov", "created": created,
    })


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(bootstrap_servers="127.0.0.1:1", token_secret=SECRET.decode(),
                        inbox_db=tmp_path / "inbox" / "inbox.sqlite3",
                        token_revocation_check_seconds=0.05, sse_queue_max=3,
                        sse_streams_per_token=3)
    client = TestClient(TestServer(create_web_app(settings, consume=False)))
    await client.start_server()
    yield client
    await client.close()


def token(caseworker: str = "bf-0042", department: str = "boern-familie",
          unit: str | None = "bf-syd", **kwargs: Any) -> str:
    return tokens.issue(SECRET, caseworker, department, unit, **kwargs)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def open_stream(client: TestClient[Any, Any], value: str) -> ClientResponse:
    reply = await client.get("/api/v1/stream", params={"access_token": value})
    assert reply.status == 200
    assert await asyncio.wait_for(reply.content.readline(), 5) == b": connected\n"
    await reply.content.readline()
    return reply


async def next_event(reply: ClientResponse, timeout: float = 5.0) -> tuple[str, bytes]:
    """(event name, data) of the next event on the stream; comments are skipped."""
    name, data = "", b""
    while True:
        line = await asyncio.wait_for(reply.content.readline(), timeout)
        if line == b"":
            return "<closed>", b""
        if line.startswith(b"event: "):
            name = line[7:].strip().decode()
        elif line.startswith(b"data: "):
            data = line[6:].strip()
        elif line == b"\n" and name:
            return name, data


async def assert_closed(reply: ClientResponse) -> None:
    assert await asyncio.wait_for(reply.content.read(), 5) == b""


def closed_count(reason: str) -> float:
    return REGISTRY.get_sample_value("advisering_sse_closed_total", {"reason": reason}) or 0.0


async def test_revoked_while_serving_is_refused_and_its_stream_closed(
    served: TestClient[Any, Any], tmp_path: Path,
) -> None:
    """Revoking a jti while serve runs closes its stream and refuses the token, no restart."""
    jti = "revoke-me-0001"
    mine, other = token(jti=jti), token()
    assert (await served.get("/api/v1/me", headers=bearer(mine))).status == 200
    stream = await open_stream(served, mine)
    untouched = await open_stream(served, other)
    before = closed_count("revoked")
    assert revoke(tmp_path / "inbox" / "token-revocations.jsonl", jti, "stolen laptop",
                  max_bytes=1 << 20, max_entries=100)
    assert (await next_event(stream))[0] == "revoked"
    await assert_closed(stream)
    reply = await served.get("/api/v1/me", headers=bearer(mine))
    assert reply.status == 401 and "revoked" in (await reply.json())["message"]
    assert (await served.get("/api/v1/me", headers=bearer(other))).status == 200
    refused = await served.get("/api/v1/stream", params={"access_token": mine})
    assert refused.status == 401
    assert closed_count("revoked") == before + 1
    assert len(served.server.app[BROADCAST]) == 1
    untouched.close()


async def test_stream_that_outlives_its_token_is_sent_expired_and_closed(
    served: TestClient[Any, Any],
) -> None:
    """A stream is closed with event: expired when its token's exp passes."""
    started = time.monotonic()
    stream = await open_stream(served, token(lifetime=2))
    name, data = await next_event(stream, timeout=6)
    assert name == "expired" and data == b'{"reason":"expired"}'
    assert time.monotonic() - started <= 4
    await assert_closed(stream)


async def test_slow_client_whose_queue_overflows_is_sent_reload_and_dropped(
    served: TestClient[Any, Any],
) -> None:
    """More notifications than the stream's queue holds ends it with event: reload."""
    app = served.server.app
    stream = await open_stream(served, token())
    before = closed_count("overflow")
    app[BROADCAST].publish(await app[STORE].add_many(
        [note(f"n{i}", "bf-0042", "bf-syd", "boern-familie") for i in range(4)]))
    assert (await next_event(stream))[0] == "reload"
    await assert_closed(stream)
    assert closed_count("overflow") == before + 1
    assert len(app[BROADCAST]) == 0


async def test_a_queue_within_its_bound_is_delivered_in_full(
    served: TestClient[Any, Any],
) -> None:
    """As many notifications as the queue holds all arrive (the bound is not off by one)."""
    app = served.server.app
    stream = await open_stream(served, token())
    app[BROADCAST].publish(await app[STORE].add_many(
        [note(f"k{i}", "bf-0042", "bf-syd", "boern-familie") for i in range(3)]))
    assert [(await next_event(stream))[0] for _ in range(3)] == ["notification"] * 3
    stream.close()


async def test_fourth_stream_of_one_token_closes_the_oldest(
    served: TestClient[Any, Any],
) -> None:
    """Streams per token are capped: opening one more sends the oldest event: replaced."""
    shared, other = token(), token()
    streams = [await open_stream(served, shared) for _ in range(3)]
    others = [await open_stream(served, other) for _ in range(3)]
    newest = await open_stream(served, shared)
    assert (await next_event(streams[0]))[0] == "replaced"
    await assert_closed(streams[0])
    assert len(served.server.app[BROADCAST]) == 6
    app = served.server.app
    app[BROADCAST].publish(await app[STORE].add_many([note("c1", "bf-0042", "bf-syd",
                                                     "boern-familie")]))
    for open_one in [*streams[1:], newest, *others]:
        assert (await next_event(open_one))[0] == "notification"
        open_one.close()


async def test_same_caseworker_id_in_two_departments_never_sees_the_other(
    served: TestClient[Any, Any],
) -> None:
    """Matching is on (department, caseworker) and (department, unit), in the API and live."""
    app = served.server.app
    jc, bf = token("x-1", "jobcenter", "team-a"), token("x-1", "boern-familie", "team-a")
    jc_stream, bf_stream = await open_stream(served, jc), await open_stream(served, bf)
    app[BROADCAST].publish(await app[STORE].add_many([
        note("jc-own", "x-1", "team-a", "jobcenter"),
        note("bf-own", "x-1", "team-a", "boern-familie"),
        note("jc-unit", None, "team-a", "jobcenter"),
        note("bf-unit", None, "team-a", "boern-familie")]))
    for value, stream, department in ((jc, jc_stream, "jc"), (bf, bf_stream, "bf")):
        listed = await (await served.get("/api/v1/notifications", headers=bearer(value))).json()
        assert sorted(n["id"] for n in listed["items"]) == [f"{department}-own",
                                                            f"{department}-unit"]
        foreign = "bf-own" if department == "jc" else "jc-own"
        for method, path in (("GET", f"/api/v1/notifications/{foreign}"),
                             ("POST", f"/api/v1/notifications/{foreign}/read")):
            assert (await served.request(method, path, headers=bearer(value))).status == 404
        live = [await next_event(stream), await next_event(stream)]
        assert all(f'"id":"{department}-'.encode() in data for _, data in live)
        stream.close()
    marked = await (await served.post("/api/v1/notifications/read-all",
                                      headers=bearer(jc))).json()
    assert marked == {"marked": 2}
    still = await (await served.get("/api/v1/notifications?unread=true",
                                    headers=bearer(bf))).json()
    assert still["unread"] == 2


async def test_no_pseudonym_in_any_inbox_answer_or_live_event(
    served: TestClient[Any, Any],
) -> None:
    """The citizen pseudonym is in no list, item, action or live-stream answer."""
    app = served.server.app
    value = token()
    stream = await open_stream(served, value)
    app[BROADCAST].publish(await app[STORE].add_many([note("p1", "bf-0042", "bf-syd",
                                                     "boern-familie")]))
    _, data = await next_event(stream)
    stream.close()
    bodies = [data]
    for method, path in (("GET", "/api/v1/notifications"), ("GET", "/api/v1/notifications/p1"),
                         ("GET", "/api/v1/notifications?unread=true&severity=high"),
                         ("POST", "/api/v1/notifications/p1/read"),
                         ("POST", "/api/v1/notifications/read-all"), ("GET", "/api/v1/me")):
        reply = await served.request(method, path, headers=bearer(value))
        assert reply.status == 200
        bodies.append(await reply.read())
    assert b'"id":"p1"' in bodies[0] and b'"id":"p1"' in bodies[1]
    for body in bodies:
        assert PSEUDONYM.encode() not in body and b'"citizen"' not in body
    stored = await app[STORE].get(Viewer("boern-familie", "bf-0042", "bf-syd"), "p1")
    assert stored is not None and stored.body["citizen"] == PSEUDONYM  # the store keeps it


async def test_client_that_stops_reading_is_dropped_after_the_write_timeout(
    tmp_path: Path,
) -> None:
    """A client that reads nothing makes a write block; after the write timeout it is dropped."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", token_secret=SECRET.decode(),
                        inbox_db=tmp_path / "inbox.sqlite3", sse_queue_max=10_000,
                        sse_write_timeout_seconds=0.5)
    server = TestServer(create_web_app(settings, consume=False))
    await server.start_server()
    app = server.app
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(f"GET /api/v1/stream?access_token={token()} HTTP/1.1\r\n"
                     f"Host: {server.host}\r\n\r\n".encode())
        await writer.drain()
        assert b"200" in await asyncio.wait_for(reader.readline(), 5)  # then never reads again
        before = closed_count("write_timeout")
        big = "x" * 60_000
        deadline = time.monotonic() + 30
        number = 0
        while closed_count("write_timeout") == before and time.monotonic() < deadline:
            batch = []
            for _ in range(20):
                number += 1
                raw = note(f"w{number}", "bf-0042", "bf-syd", "boern-familie").to_json()
                batch.append(Notification.from_json(dict(raw, message=big)))
            app[BROADCAST].publish(batch)
            await asyncio.sleep(0.05)
        assert closed_count("write_timeout") == before + 1
        assert len(app[BROADCAST]) == 0
    finally:
        writer.close()
        await server.close()


def test_an_older_database_gets_the_pair_indexes_and_keeps_its_rows(tmp_path: Path) -> None:
    """A database with the former per-caseworker indexes opens, migrated; rows match by pair."""
    path = tmp_path / "inbox.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE notifications (id TEXT PRIMARY KEY, caseworker TEXT, unit TEXT NOT NULL, "
        "department TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, "
        "created TEXT NOT NULL, received TEXT NOT NULL, body BLOB NOT NULL, read_at TEXT, "
        "feedback TEXT, feedback_reason TEXT, feedback_at TEXT);"
        "CREATE INDEX by_caseworker ON notifications (caseworker, read_at, created);"
        "CREATE INDEX by_unit ON notifications (unit, caseworker, read_at, created);")
    stored = note("old-1", "x-1", "team-a", "jobcenter")
    old.execute("INSERT INTO notifications (id, caseworker, unit, department, rule, severity, "
                "created, received, body) VALUES (?,?,?,?,?,?,?,?,?)",
                (stored.id, "x-1", "team-a", "jobcenter", stored.rule, stored.severity,
                 stored.created, stored.created, stored.encode()))
    old.commit()
    old.close()
    store = InboxStore(path)
    try:
        assert store.migrated == Migrated(0, len(SQLITE_MIGRATIONS))
        with sqlite3.connect(path) as check:
            indexes = {row[0] for row in check.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'notifications'")}
            versions = [row[0] for row in check.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, len(SQLITE_MIGRATIONS) + 1))
        assert {"by_recipient", "by_department_unit"} <= indexes
        assert not {"by_caseworker", "by_unit"} & indexes
        assert store.get(Viewer("jobcenter", "x-1"), "old-1") is not None
        assert store.get(Viewer("boern-familie", "x-1", "team-a"), "old-1") is None
    finally:
        store.close()
    reopened = InboxStore(path)  # a second open has nothing left to do
    assert reopened.migrated == Migrated(len(SQLITE_MIGRATIONS), len(SQLITE_MIGRATIONS))
    reopened.close()

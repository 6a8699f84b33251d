"""The inbox API without a broker: every endpoint, authorisation, bad input, the live stream."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from advisering.engine.notification import Notification
from advisering.http.server import create_web_app
from advisering.inbox import tokens
from advisering.inbox.service import STORE
from advisering.inbox.storage import InboxStorage
from advisering.inbox.store import Viewer
from advisering.labels import labels_json
from advisering.settings import Settings
from tests.pg import open_store, store_and_publish

SECRET = b"s" * 32


def note(nid: str, caseworker: str | None, unit: str, severity: str = "normal",
         minute: int = 0, rule: str = "sanktion-til-boernesag") -> Notification:
    created = (dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
               + dt.timedelta(minutes=minute)).isoformat()
    return Notification.from_json({
        "id": nid, "rule": rule, "title": "Sanktion", "severity": severity,
        "recipient": {"caseworker": caseworker, "unit": unit, "department": "boern-familie"},
        "related_case": {"id": f"DUBU-{nid}", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": "e1", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": created},
        "citizen": "ps1-" + "a" * 52, "message": f"Borgeren i din sag DUBU-{nid} ...",
        "legal_basis": "Barnets lov", "created": created,
    })


@pytest.fixture
async def inbox(inbox_db: Path | str) -> AsyncIterator[tuple[TestClient[Any, Any],
                                                           InboxStorage]]:
    """A served inbox on each store in turn, with four notifications of two caseworkers."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", token_secret="s" * 32,
                        inbox_db=inbox_db,
                        case_urls={"dubu": "https://dubu.example/sag/{id}"})
    app = create_web_app(settings, consume=False)
    client = TestClient(TestServer(app))
    await client.start_server()
    store = app[STORE]
    await store.add_many([
        note("a1", "bf-0042", "bf-syd", "high", 1), note("a2", "bf-0042", "bf-syd", "info", 2),
        note("u1", None, "bf-syd", "normal", 3), note("o1", "bf-0077", "bf-nord", "high", 4),
    ])
    yield client, store
    await client.close()


def auth(caseworker: str = "bf-0042", unit: str | None = "bf-syd",
         department: str = "boern-familie", **kwargs: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + tokens.issue(SECRET, caseworker, department, unit,
                                                      **kwargs)}


async def test_list_shows_own_and_unit_notifications_unread_first(inbox: Any) -> None:
    """A caseworker sees their own and their unit's unassigned notifications, newest first."""
    client, _ = inbox
    reply = await client.get("/api/v1/notifications", headers=auth())
    assert reply.status == 200
    body = await reply.json()
    assert [n["id"] for n in body["items"]] == ["u1", "a2", "a1"]
    assert body["unread"] == 3 and body["total"] == 3
    assert body["items"][0]["related_case"]["url"] == "https://dubu.example/sag/DUBU-u1"


async def test_filters_and_paging(inbox: Any) -> None:
    """Severity and read-state filters and limit/offset paging narrow the list."""
    client, _ = inbox
    high = await (await client.get("/api/v1/notifications?severity=high", headers=auth())).json()
    assert [n["id"] for n in high["items"]] == ["a1"]
    await client.post("/api/v1/notifications/a2/read", headers=auth())
    unread = await (await client.get("/api/v1/notifications?unread=true", headers=auth())).json()
    assert [n["id"] for n in unread["items"]] == ["u1", "a1"]
    read = await (await client.get("/api/v1/notifications?unread=false", headers=auth())).json()
    assert [n["id"] for n in read["items"]] == ["a2"]
    everything = await (await client.get("/api/v1/notifications", headers=auth())).json()
    assert [n["id"] for n in everything["items"]] == ["u1", "a1", "a2"]
    page = await (await client.get("/api/v1/notifications?limit=1&offset=1",
                                   headers=auth())).json()
    assert [n["id"] for n in page["items"]] == ["a1"] and page["total"] == 3


async def test_mark_one_and_all_read(inbox: Any) -> None:
    """Marking one read, then all, leaves no unread notification for the viewer only."""
    client, store = inbox
    reply = await client.post("/api/v1/notifications/a1/read", headers=auth())
    assert reply.status == 200
    assert (await (await client.get("/api/v1/notifications/a1", headers=auth())).json())["read_at"]
    marked = await (await client.post("/api/v1/notifications/read-all", headers=auth())).json()
    assert marked == {"marked": 2}
    assert (await store.list(Viewer("boern-familie", "bf-0077", "bf-nord")))[2] == 1


async def test_feedback_is_stored_and_counted(inbox: Any) -> None:
    """Useful / not useful with a reason is kept and counted per rule for operators."""
    client, store = inbox
    before = REGISTRY.get_sample_value(
        "advisering_feedback_total", {"rule": "sanktion-til-boernesag", "verdict": "not_useful"}
    ) or 0.0
    reply = await client.post("/api/v1/notifications/a1/feedback", headers=auth(),
                              json={"useful": False, "reason": "kendte det allerede"})
    assert reply.status == 200
    item = await (await client.get("/api/v1/notifications/a1", headers=auth())).json()
    assert (item["feedback"], item["feedback_reason"]) == ("not_useful", "kendte det allerede")
    assert await store.feedback_counts() == {("sanktion-til-boernesag", "not_useful"): 1}
    after = REGISTRY.get_sample_value(
        "advisering_feedback_total", {"rule": "sanktion-til-boernesag", "verdict": "not_useful"})
    assert after == before + 1


@pytest.mark.parametrize("path", [
    "/api/v1/notifications/o1", "/api/v1/notifications/o1/read",
    "/api/v1/notifications/o1/feedback", "/api/v1/notifications/nope"])
async def test_other_caseworkers_notification_is_404(inbox: Any, path: str) -> None:
    """Another caseworker's (or an unknown) notification is 404 on every endpoint."""
    client, store = inbox
    if path.rsplit("/", 1)[-1] in ("o1", "nope"):
        reply = await client.get(path, headers=auth())
    else:
        reply = await client.post(path, headers=auth(), json={"useful": True})
    assert reply.status == 404
    item = await store.get(Viewer("boern-familie", "bf-0077", "bf-nord"), "o1")
    assert item is not None
    assert item.read_at is None


async def test_unit_notifications_need_the_unit_claim(inbox: Any) -> None:
    """Without a unit in the token the unit's unassigned notifications are not shown."""
    client, _ = inbox
    body = await (await client.get("/api/v1/notifications", headers=auth(unit=None))).json()
    assert [n["id"] for n in body["items"]] == ["a2", "a1"]
    assert (await client.get("/api/v1/notifications/u1", headers=auth(unit=None))).status == 404


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer not.a.token"},
    {"Authorization": "Bearer " + tokens.issue(b"x" * 32, "bf-0042", "boern-familie", "bf-syd")},
    {"Authorization": "Bearer " + tokens.issue(SECRET, "bf-0042", "boern-familie", "bf-syd",
                                               lifetime=60, now=1_000_000.0)},
], ids=["missing", "malformed", "forged", "expired"])
async def test_missing_forged_or_expired_token_is_401(inbox: Any, headers: dict[str, str]) -> None:
    """Every endpoint answers 401 to a missing, malformed, forged or expired token."""
    client, _ = inbox
    for method, path in (("GET", "/api/v1/notifications"), ("GET", "/api/v1/notifications/a1"),
                         ("POST", "/api/v1/notifications/a1/read"),
                         ("POST", "/api/v1/notifications/read-all"),
                         ("POST", "/api/v1/notifications/a1/feedback"),
                         ("GET", "/api/v1/stream"), ("GET", "/api/v1/me")):
        reply = await client.request(method, path, headers=headers)
        assert reply.status == 401, (method, path)
        assert "WWW-Authenticate" in reply.headers


@pytest.mark.parametrize(("query", "message"), [
    ("unread=maybe", "unread"), ("severity=urgent", "severity"), ("limit=0", "limit"),
    ("limit=ten", "whole numbers"), ("offset=-1", "offset"), ("limit=1_0", "limit"),
    (f"offset={2**63}", "offset"), ("offset=543791115532072350908416", "offset")])
async def test_bad_list_parameters_are_400(inbox: Any, query: str, message: str) -> None:
    """Bad filter or paging values are a 400 naming the parameter."""
    client, _ = inbox
    reply = await client.get(f"/api/v1/notifications?{query}", headers=auth())
    assert reply.status == 400
    assert message in (await reply.json())["message"]


async def test_read_all_answers_post_only(inbox: Any) -> None:
    """read-all is not taken for a notification id: GET is 405 and Allow names POST only."""
    client, _ = inbox
    for method in ("GET", "OPTIONS"):
        reply = await client.request(method, "/api/v1/notifications/read-all", headers=auth())
        assert reply.status == 405
        assert reply.headers["Allow"] == "POST"


@pytest.mark.parametrize("body", [
    b"not json", b'{"useful": "yes"}', b'{"useful": true, "reason": 5}',
    b'{"useful": true, "extra": 1}', b'{"useful": true, "reason": "' + b"x" * 600 + b'"}'])
async def test_bad_feedback_is_4xx(inbox: Any, body: bytes) -> None:
    """Feedback that is not JSON or has wrong fields is a 4xx with a message, never a 500."""
    client, _ = inbox
    reply = await client.post("/api/v1/notifications/a1/feedback", headers=auth(), data=body)
    assert reply.status in (400, 422)
    assert (await reply.json())["message"]


async def test_live_stream_delivers_new_notification(inbox: Any) -> None:
    """The SSE stream (token as access_token) delivers a new visible notification only."""
    client, _store = inbox
    token = tokens.issue(SECRET, "bf-0042", "boern-familie", "bf-syd")
    reply = await client.get(f"/api/v1/stream?access_token={token}")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    assert (await reply.content.readline()).startswith(b": connected")
    await reply.content.readline()
    new = [note("x9", "bf-9999", "bf-nord"), note("n1", "bf-0042", "bf-syd", "high", 9)]
    await store_and_publish(client.server.app, new)
    lines = [await asyncio.wait_for(reply.content.readline(), 5) for _ in range(3)]
    assert lines[0] == b"event: notification\n"
    assert lines[1] == b"id: n1\n"
    assert b'"id":"n1"' in lines[2]
    reply.close()


async def test_page_and_me(inbox: Any) -> None:
    """The Danish page and its assets are served; /me tells who the token is for."""
    client, _ = inbox
    page = await (await client.get("/")).text()
    assert '<html lang="da">' in page and "Indbakke" in page
    assert (await client.get("/static/app.js")).status == 200
    assert (await client.get("/static/nope.js")).status == 404
    document = await (await client.get("/api/v1/openapi.json")).json()
    for path in ("/api/v1/notifications", "/api/v1/notifications/{id}/feedback",
                 "/api/v1/stream", "/api/v1/notifications/read-all"):
        assert path in document["paths"]
    me = await (await client.get("/api/v1/me", headers=auth())).json()
    assert me == {"caseworker": "bf-0042", "department": "boern-familie", "unit": "bf-syd"}


async def test_page_carries_the_one_label_table(inbox: Any) -> None:
    """The page gets its Danish labels from advisering.labels; app.js holds no copy."""
    client, _ = inbox
    page = await (await client.get("/")).text()
    start = page.index('<script id="labels" type="application/json">') + len(
        '<script id="labels" type="application/json">')
    assert orjson.loads(page[start:page.index("</script>", start)]) == orjson.loads(labels_json())
    script = await (await client.get("/static/app.js")).text()
    assert "jobcentret" not in script and "dødsfald" not in script and "Høj" not in script


async def test_repeated_notification_is_stored_once_and_read_ones_expire(
        inbox_db: Path | str) -> None:
    """The same id twice is stored once; read notifications past retention are deleted."""
    store = await open_store(inbox_db)
    assert len(await store.add_many([note("a1", "bf-0042", "bf-syd")])) == 1
    assert await store.add_many([note("a1", "bf-0042", "bf-syd")]) == []
    await store.add_many([note("a2", "bf-0042", "bf-syd")])
    viewer = Viewer("boern-familie", "bf-0042", "bf-syd")
    assert await store.mark_read(viewer, "a1")
    assert await store.expire(dt.timedelta(days=30)) == 0
    assert await store.expire(dt.timedelta(seconds=-1)) == 1
    assert [n.body["id"] for n in (await store.list(viewer))[0]] == ["a2"]
    await store.close()

"""Security headers on every response of `advisering serve`: each route, 404, 405, 500, stream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from advisering.dev.demo import demo_grants
from advisering.http.headers import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from advisering.http.server import create_web_app
from advisering.http.sources import add_source
from advisering.inbox import tokens
from advisering.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 32
# A value for each path placeholder the app's routes use (the page's static files are named).
PLACEHOLDERS = {"id": "n-1", "name": "app.js"}


def settings(tmp_path: Path) -> Settings:
    sources = tmp_path / "sources.yaml"
    add_source(sources, "dubu", demo_grants()["dubu"])
    return Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key="k" * 32, token_secret=SECRET,
                    sources_file=sources, topics_dir=ROOT / "topics",
                    inbox_db=tmp_path / "inbox" / "inbox.sqlite3",
                    case_urls={"dubu": "https://dubu.example/sag/{id}"})


async def boom(_request: web.Request) -> web.Response:
    raise RuntimeError("a handler that fails")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_web_app(settings(tmp_path), consume=False)
    app.router.add_get("/test-only/boom", boom)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


def assert_secure(headers: CIMultiDictProxy[str], what: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, f"{what}: {name} is {headers.get(name)!r}"
    assert "aiohttp" not in headers.get("Server", "") and "Python" not in headers["Server"]


def concrete(path: str) -> str:
    """A route's path with each ``{name}`` or ``{name:regex}`` placeholder filled in."""
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: PLACEHOLDERS[m.group(1)], path)


def test_policy_forbids_inline_script_and_framing() -> None:
    """The CSP allows scripts and styles only from the server's own files, and no framing."""
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


async def test_every_route_answers_with_the_security_headers(
    client: TestClient[Any, Any],
) -> None:
    """Every route registered on serve's app, asked without credentials, has every header."""
    routes = [(r.method, r.resource.canonical) for r in client.app.router.routes()
              if r.resource is not None and r.method != "HEAD"]
    assert len(routes) >= 13  # ingest, inbox API, stream, page, static, health, metrics
    for method, path in routes:
        if path.startswith("/test-only/"):
            continue
        async with client.request(method, concrete(path)) as reply:
            assert reply.status != 500, f"{method} {path}: {reply.status}"
            assert_secure(reply.headers, f"{method} {path} ({reply.status})")


async def test_page_and_its_files_have_the_headers(client: TestClient[Any, Any]) -> None:
    """The page, its script and its style (200s, not only errors) carry the headers."""
    for path in ("/", "/static/app.js", "/static/style.css"):
        reply = await client.get(path)
        assert reply.status == 200
        assert_secure(reply.headers, path)


async def test_not_found_method_not_allowed_and_error_have_the_headers(
    client: TestClient[Any, Any],
) -> None:
    """A 404, a 405 and the 500 of a handler that raised carry the headers too."""
    for method, path, status in [("GET", "/no/such/page", 404), ("GET", "/static/nope.js", 404),
                                 ("DELETE", "/healthz", 405), ("GET", "/test-only/boom", 500)]:
        reply = await client.request(method, path)
        assert reply.status == status
        assert_secure(reply.headers, f"{method} {path}")


async def test_authenticated_answers_and_the_live_stream_have_the_headers(
    client: TestClient[Any, Any],
) -> None:
    """A 200 of the API and the Server-Sent Events stream carry the headers."""
    token = tokens.issue(SECRET.encode(), "bf-0042", "boern-familie", "bf-syd")
    reply = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200
    assert_secure(reply.headers, "/api/v1/me")
    async with client.get("/api/v1/stream", params={"access_token": token}) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert_secure(stream.headers, "/api/v1/stream")
        assert await asyncio.wait_for(stream.content.readline(), 5) == b": connected\n"


async def test_a_request_aiohttp_cannot_parse_gets_no_version_banner(
    client: TestClient[Any, Any],
) -> None:
    """aiohttp's own 400 for a malformed request says `Server: advisering`, not its version."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"NOT A REQUEST\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.split(" ")[1] == "400"
    assert "Server: advisering\r\n" in head + "\r\n"
    assert "aiohttp" not in head and "Python" not in head

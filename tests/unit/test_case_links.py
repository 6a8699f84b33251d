"""Links to the recipient's own case: the id is percent-encoded, only https patterns pass."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from advisering.caselinks import case_link, check_pattern
from advisering.engine.notification import Notification
from advisering.http.server import create_web_app
from advisering.inbox import tokens
from advisering.inbox.service import STORE
from advisering.settings import Settings

PATTERN = "https://dubu.example/sag/{id}"
HOSTILE_IDS = ["DUBU/2025/1", "a?b=c", "a#frag", "100%", "%2e%2e", "../admin", "a b",
               "javascript:alert(1)", "//evil.example", "æøå", "a\\b", "{id}", "a\nb"]


@pytest.mark.parametrize("case_id", HOSTILE_IDS)
def test_id_stays_inside_its_path_segment(case_id: str) -> None:
    """Whatever the id holds, the link keeps the pattern's host and path, and decodes to the id."""
    link = case_link(PATTERN, case_id)
    assert link is not None
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc) == ("https", "dubu.example")
    assert parts.path.startswith("/sag/") and parts.path.count("/") == 2
    assert parts.query == "" and parts.fragment == ""
    assert unquote(parts.path.removeprefix("/sag/")) == case_id


def test_id_in_a_query_is_one_value() -> None:
    """In a query the id cannot add parameters or a fragment."""
    link = case_link("https://sag.example/vis?sag={id}&fane=1", "1&admin=true#x")
    assert link == "https://sag.example/vis?sag=1%26admin%3Dtrue%23x&fane=1"


@pytest.mark.parametrize("case_id", ["", ".", ".."])
def test_dot_segments_and_empty_ids_give_no_link(case_id: str) -> None:
    """An id that would walk up the case system's paths (or is empty) gets no link at all."""
    assert case_link(PATTERN, case_id) is None


@pytest.mark.parametrize("pattern", [
    "http://dubu.example/sag/{id}", "HTTP://dubu.example/sag/{id}", "javascript:alert('{id}')",
    "data:text/html,{id}", "//dubu.example/sag/{id}", "/sag/{id}", "dubu.example/sag/{id}",
    "https:dubu.example/{id}", "https:///sag/{id}", "https://{id}.example/sag",
    "https://{id}/sag", "https://user@evil.example/{id}", "https://dubu.example\\@evil/{id}",
    "https://dubu.example/sag", "https://dubu.example/ sag/{id}", "ftp://dubu.example/{id}",
    " https://dubu.example/{id}",
])
def test_only_https_patterns_with_the_id_after_the_host_are_accepted(pattern: str) -> None:
    """http:, javascript:, data:, //host, relative, id-in-host and id-less patterns are refused."""
    with pytest.raises(ValueError, match="case URL pattern for 'dubu'"):
        check_pattern("dubu", pattern)


@pytest.mark.parametrize("pattern", [
    PATTERN, "HTTPS://dubu.example:8443/sag/{id}", "https://sag.example/vis?sag={id}",
    "https://sag.example/#/sag/{id}",
])
def test_https_patterns_are_accepted(pattern: str) -> None:
    """An https pattern with {id} in its path, query or fragment is accepted as it is."""
    assert check_pattern("dubu", pattern) == pattern


def test_settings_refuse_a_javascript_pattern_naming_the_setting_and_entry() -> None:
    """A javascript: pattern in ADVISERING_CASE_URLS is refused, naming the setting and source."""
    with pytest.raises(ValidationError) as caught:
        Settings(case_urls={"dubu": PATTERN, "momentum": "javascript:alert('{id}')"})
    message = str(caught.value)
    assert "ADVISERING_CASE_URLS" in message and "'momentum'" in message
    assert "https://" in message


def note(case_id: str) -> Notification:
    created = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC).isoformat()
    return Notification.from_json({
        "id": "n-1", "rule": "sanktion-til-boernesag", "title": "Sanktion", "severity": "high",
        "recipient": {"caseworker": "bf-0042", "unit": "bf-syd", "department": "boern-familie"},
        "related_case": {"id": case_id, "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": "e1", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": created},
        "citizen": "ps1-" + "a" * 52, "message": "Borgeren i din sag ...",
        "legal_basis": "Barnets lov", "created": created,
    })


async def test_inbox_answers_the_encoded_link(tmp_path: Path) -> None:
    """The inbox API gives the page the encoded link for a hostile id, never a javascript: URL."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", token_secret="s" * 32,
                        inbox_db=tmp_path / "inbox.sqlite3", case_urls={"dubu": PATTERN})
    app = create_web_app(settings, consume=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        await app[STORE].add_many([note("javascript:alert(1)/../?#")])
        token = tokens.issue(b"s" * 32, "bf-0042", "boern-familie", "bf-syd")
        reply = await client.get("/api/v1/notifications/n-1",
                                 headers={"Authorization": f"Bearer {token}"})
        related = (await reply.json())["related_case"]
    finally:
        await client.close()
    assert related["id"] == "javascript:alert(1)/../?#"
    assert related["url"] == "https://dubu.example/sag/javascript%3Aalert%281%29%2F..%2F%3F%23"

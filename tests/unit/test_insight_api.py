"""POST /api/v1/insight: insight-role tokens only, the CPR in the body only, each lookup audited."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from advisering.http.headers import SECURITY_HEADERS
from advisering.http.openapi import openapi_document
from advisering.http.server import create_web_app
from advisering.inbox import tokens
from advisering.inbox.tokens import TokenError
from advisering.settings import Settings
from tests.pg import open_audit, text_in_tables
from tests.unit.audit_support import CITIZEN, CPR, KEY, OTHER, record

SECRET = b"s" * 32


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Path | str]]:
    """serve with a SQLite audit store (the refusals, which never reach the store)."""
    async for each in _serve(tmp_path, tmp_path / "audit.sqlite3"):
        yield each


@pytest.fixture
async def served_on(tmp_path: Path, audit_db: Path | str,
                    ) -> AsyncIterator[tuple[TestClient[Any, Any], Path | str]]:
    """serve with each audit store: SQLite, then PostgreSQL."""
    async for each in _serve(tmp_path, audit_db):
        yield each


def stored_text(db: Path | str) -> str:
    """Everything the audit store holds, as text: the SQLite files (WAL too), or the rows."""
    if isinstance(db, Path):
        return "".join(f.read_bytes().decode("latin-1") for f in db.parent.glob(db.name + "*"))
    return text_in_tables(db, ("audit_disclosures", "audit_lookups"))


async def _serve(tmp_path: Path, db: Path | str,
                 ) -> AsyncIterator[tuple[TestClient[Any, Any], Path | str]]:
    store = open_audit(db)
    store.add_many([record("n1"), record("n2", created="2026-12-02T10:00:00+01:00"),
                    record("x1", OTHER)])
    store.close()
    settings = Settings(bootstrap_servers="127.0.0.1:1", token_secret=SECRET.decode(),
                        pseudonym_key=KEY.decode(), inbox_db=tmp_path / "inbox.sqlite3",
                        audit_db=db, insight_max_body_bytes=1024)
    client = TestClient(TestServer(create_web_app(settings, consume=False)))
    await client.start_server()
    yield client, db
    await client.close()


def bearer(roles: tuple[str, ...] = ("insight",), **claims: Any) -> dict[str, str]:
    token = tokens.issue(SECRET, "ins-0001", "borgerservice", "indsigt", roles=roles, **claims)
    return {"Authorization": f"Bearer {token}"}


def forged(roles: object, *, secret: bytes = SECRET) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": "advisering", "aud": "advisering-inbox", "sub": "bf-0042",
              "dept": "boern-familie", "iat": now, "nbf": now, "exp": now + 600, "jti": "j-1",
              "roles": roles}
    return {"Authorization": f"Bearer {tokens.sign(secret, claims)}"}


async def test_an_insight_token_gets_the_log_and_the_lookup_is_audited(served_on: Any) -> None:
    """200 with the citizen's disclosures; the lookup stored with who asked; no CPR logged."""
    client, db = served_on
    with capture_logs() as logs:
        reply = await client.post("/api/v1/insight", headers=bearer(),
                                  json={"cpr": "010180-1234", "to": "2026-11-30"})
    assert reply.status == 200
    body = await reply.json()
    assert [d["notification_id"] for d in body["disclosures"]] == ["n1"]
    assert all(value == reply.headers[name] for name, value in SECURITY_HEADERS.items())
    store = open_audit(db)
    [lookup] = store.lookups([CITIZEN])
    store.close()
    assert (lookup.via, lookup.caseworker, lookup.department, lookup.unit, lookup.disclosures) == (
        "api", "ins-0001", "borgerservice", "indsigt", 1)
    [entry] = [e for e in logs if e["event"] == "insight_lookup"]
    assert entry["jti"] == lookup.jti and CPR not in repr(logs) and CITIZEN not in repr(logs)
    assert "ins-0001" in stored_text(db) and CPR not in stored_text(db)


async def test_an_ordinary_caseworker_token_is_forbidden(served_on: Any) -> None:
    """A token without the insight role: 403, nothing looked up or recorded."""
    client, db = served_on
    reply = await client.post("/api/v1/insight", headers=bearer(roles=()), json={"cpr": CPR})
    assert reply.status == 403
    store = open_audit(db)
    assert store.lookups([CITIZEN]) == []
    store.close()


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer nope"},
    forged(["insight"], secret=b"x" * 32),   # the role claim added by someone without the key
    forged(["admin"]), forged("insight"), forged(["insight", "insight"]), forged([1]),
    forged({"insight": True}),
])
async def test_missing_forged_or_invented_role_tokens_are_unauthorized(
    served: Any, headers: dict[str, str],
) -> None:
    """No token, a bad signature or a roles claim that is not a list of known roles: 401."""
    client, _ = served
    reply = await client.post("/api/v1/insight", headers=headers, json={"cpr": CPR})
    assert reply.status == 401


@pytest.mark.parametrize("query", [f"cpr={CPR}", "cpr=010180-1234", "x=1", f"{CPR}"])
async def test_a_query_string_is_refused_before_anything_is_read(served: Any, query: str) -> None:
    """The CPR number in a URL is never answered: 400, whatever the token, and not logged."""
    client, _ = served
    with capture_logs() as logs:
        reply = await client.post(f"/api/v1/insight?{query}", headers=bearer(),
                                  json={"cpr": CPR})
    assert reply.status == 400
    assert (await reply.json())["error"] == "query_not_allowed"
    assert CPR not in repr(logs)


@pytest.mark.parametrize(("body", "status"), [
    (b"", 400), (b"not json", 400), (b"[]", 400), (b'"010180-1234"', 400),
    (b"{}", 422), (b'{"cpr": 101801234}', 422), (b'{"cpr": "010180 1234"}', 422),
    (b'{"cpr": "3201801234"}', 422), (b'{"cpr": "0101801234", "from": "yesterday"}', 422),
    (b'{"cpr": "0101801234", "from": "2026-12-01", "to": "2026-11-01"}', 422),
    (b'{"cpr": "0101801234", "name": "Jens"}', 422),
    (b'{"cpr": "0101801234", "pad": "' + b"x" * 2000 + b'"}', 413),
    (b"[" * 500 + b"]" * 500, 400),
])
async def test_malformed_bodies_are_refused_without_echoing_them(
    served: Any, body: bytes, status: int,
) -> None:
    """Not JSON, no or a malformed CPR, bad dates, unknown fields, too large: never echoed."""
    client, _ = served
    reply = await client.post("/api/v1/insight", headers=bearer(), data=body)
    assert reply.status == status
    text = await reply.text()
    assert CPR not in text and "010180 1234" not in text and "Jens" not in text


async def test_a_huge_body_is_refused_by_its_length(served: Any) -> None:
    """A megabyte body: 413 from Content-Length, before it is read."""
    client, _ = served
    reply = await client.post("/api/v1/insight", headers=bearer(), data=b"{" + b" " * 1_000_000)
    assert reply.status == 413


def test_roles_are_issued_and_verified_strictly() -> None:
    """issue(roles=...) signs known roles; an unknown one is refused when issued."""
    claims = tokens.verify(SECRET, tokens.issue(SECRET, "a", "b", roles=("insight",)))
    assert claims.roles == frozenset({"insight"})
    assert tokens.verify(SECRET, tokens.issue(SECRET, "a", "b")).roles == frozenset()
    with pytest.raises(TokenError):
        tokens.issue(SECRET, "a", "b", roles=("admin",))
    payload = tokens.issue(SECRET, "a", "b", roles=("insight",)).split(".")[1]
    assert orjson.loads(base64.urlsafe_b64decode(payload + "=="))["roles"] == ["insight"]


def test_the_openapi_document_describes_the_insight_call() -> None:
    """POST /api/v1/insight is documented with its body and its refusals."""
    post = openapi_document(100)["paths"]["/api/v1/insight"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == ["cpr"]
    assert {"400", "401", "403", "413", "422"} <= set(post["responses"])

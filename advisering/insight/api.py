"""``POST /api/v1/insight`` on serve: a citizen's disclosure log, for those who answer requests.

Only a valid, unrevoked token with the ``insight`` role gets an answer
(ordinary caseworker tokens: 403; no token, a forged one, or an invented
role claim: 401). The CPR number travels in the JSON body only: a request
with any query string is refused before anything is read (400), so a number
in a URL cannot be answered and is never read into anything. The body is
read after the token is accepted, bounded (``ADVISERING_INSIGHT_MAX_BODY_BYTES``,
else 413), and the first thing done with the number is to turn it into the
person's pseudonyms; from then on only those are used. Every answered lookup
is recorded in the audit store (who asked, with the token's caseworker,
department, unit and jti, about which pseudonym, when) and logged
(``insight_lookup``) by its lookup id, never with the CPR number or pseudonym.

The answer is the ``InsightReport`` JSON, as ``advisering insight --format
json`` prints it; the letter is made with the command line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from aiohttp import web

from advisering import metrics
from advisering.audit.store import AuditStorage, open_audit_store
from advisering.inbox import tokens
from advisering.inbox.api import bearer_claims, refused
from advisering.inbox.postgres import PoolLimits
from advisering.inbox.revocation import RevocationList
from advisering.insight.report import (
    Asker,
    InsightRequestError,
    Period,
    cpr_digits_of,
    look_up,
    parse_day,
    pseudonyms_of,
)
from advisering.jsonweb import error_response, json_response
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)

ROLE = "insight"
FIELDS = frozenset({"cpr", "from", "to"})
PATH = "/api/v1/insight"


class InsightApi:
    """The insight handler: token and role, bounded body, pseudonyms, the store, the record."""

    def __init__(self, secret: bytes, policy: tokens.TokenPolicy,
                 revocations: RevocationList | None, store: Callable[[], AuditStorage],
                 key: bytes, previous_key: bytes | None, *, max_body: int,
                 max_disclosures: int) -> None:
        self.secret, self.policy, self.revocations = secret, policy, revocations
        self.store = store
        self.key, self.previous_key = key, previous_key
        self.max_body, self.max_disclosures = max_body, max_disclosures

    def routes(self, app: web.Application) -> None:
        """Register ``POST /api/v1/insight``."""
        app.router.add_post(PATH, self.post)

    async def post(self, request: web.Request) -> web.Response:
        """POST /api/v1/insight: ``{"cpr": ..., "from": "YYYY-MM-DD", "to": ...}``."""
        if request.query_string:
            return self._refuse(400, "query_not_allowed",
                                "no query string: the CPR number goes in the JSON body only")
        try:
            claims = bearer_claims(request, self.secret, self.policy, self.revocations)
        except tokens.TokenError as exc:
            metrics.INSIGHT_LOOKUPS.labels("api", "refused").inc()
            return refused(exc)
        if ROLE not in claims.roles:
            log.warning("insight_forbidden", caseworker=claims.caseworker,
                        department=claims.department, jti=claims.jti)
            return self._refuse(403, "forbidden", "this token has no insight role")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            pseudonyms = pseudonyms_of(cpr_digits_of(_cpr(body)), self.key, self.previous_key)
            del body["cpr"]  # only the pseudonyms from here on
            first, last = _text(body, "from"), _text(body, "to")
            period = Period(parse_day(first, "from") if first else None,
                            parse_day(last, "to") if last else None)
        except InsightRequestError as exc:
            return self._refuse(422, "invalid_request", str(exc))
        asker = Asker("api", claims.caseworker, claims.department, claims.unit, claims.jti)
        report, lookup = await asyncio.to_thread(
            look_up, self.store(), pseudonyms, period, asker, limit=self.max_disclosures)
        metrics.INSIGHT_LOOKUPS.labels("api", "answered").inc()
        log.info("insight_lookup", lookup_id=lookup.id, via="api", caseworker=claims.caseworker,
                 department=claims.department, jti=claims.jti, disclosures=report.count,
                 truncated=report.truncated)
        return json_response(report.model_dump(mode="json"))

    async def _body(self, request: web.Request) -> dict[str, object] | web.Response:
        """The JSON object of the body, bounded and with only the known fields; else the answer."""
        if request.content_length is not None and request.content_length > self.max_body:
            return self._refuse(413, "too_large", f"the body is larger than {self.max_body} bytes")
        raw = await request.content.read(self.max_body + 1)
        if len(raw) > self.max_body:
            return self._refuse(413, "too_large", f"the body is larger than {self.max_body} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._refuse(400, "bad_request", 'the body must be JSON: {"cpr": "..."}')
        if not isinstance(body, dict):
            return self._refuse(400, "bad_request", 'the body must be a JSON object')
        unknown = set(body) - FIELDS
        if unknown:  # names only (bounded), never values
            return self._refuse(422, "invalid_request",
                                f"unknown field(s): {len(unknown)}; allowed: cpr, from, to")
        return body

    @staticmethod
    def _refuse(status: int, error: str, message: str) -> web.Response:
        metrics.INSIGHT_LOOKUPS.labels("api", "refused").inc()
        return error_response(status, error, message)


def _cpr(body: dict[str, object]) -> str:
    value = body.get("cpr")
    if not isinstance(value, str):
        raise InsightRequestError("cpr must be a string: DDMMYYXXXX or DDMMYY-XXXX")
    return value


def _text(body: dict[str, object], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InsightRequestError(f"{name} must be a date written YYYY-MM-DD")
    return value


def add_insight(app: web.Application, settings: Settings, revocations: RevocationList | None,
                ) -> None:
    """Mount the insight API on serve, with the audit store opened at start and closed at end."""
    secret = settings.token_secret_bytes()
    assert secret is not None
    location = settings.audit_database(settings.inbox_db)
    limits = PoolLimits.from_settings(settings)
    opened: list[AuditStorage] = []

    def store() -> AuditStorage:
        return opened[0]

    async def open_store(_app: web.Application) -> None:
        opened.append(await asyncio.to_thread(open_audit_store, location, limits))

    async def close_store(_app: web.Application) -> None:
        for each in opened:
            each.close()

    InsightApi(secret, tokens.TokenPolicy.from_settings(settings), revocations, store,
               settings.pseudonym_key_bytes(), settings.previous_pseudonym_key_bytes(),
               max_body=settings.insight_max_body_bytes,
               max_disclosures=settings.insight_max_disclosures).routes(app)
    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)

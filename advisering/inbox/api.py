"""The inbox's HTTP API under /api/v1, and the live stream (Server-Sent Events).

Every call carries a bearer token (the live stream may pass it as
``access_token`` because browsers' EventSource cannot set headers). A
caseworker sees their own notifications and the unassigned ones of their
unit, both within the department of their token; anything else is 404,
indistinguishable from an id that does not exist. A token revoked by
``advisering token revoke`` is refused from serve's next check of the
revocation file, without a restart.

The citizen's pseudonym never leaves through this API (list, one item,
live stream): the caseworker knows the citizen through their own case, the
link the notification gives (DESIGN "A notification identifies the citizen
through the recipient's own case"); the pseudonym would only let a page
correlate citizens across notifications.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from advisering import metrics
from advisering.caselinks import case_link
from advisering.inbox import tokens
from advisering.inbox.live import Broadcast, run_stream
from advisering.inbox.revocation import RevocationList
from advisering.inbox.storage import InboxStorage
from advisering.inbox.store import SEVERITY_ORDER, Viewer
from advisering.jsonweb import error_response, json_response

MAX_PAGE = 200
MAX_REASON = 500
# The largest integer SQLite and PostgreSQL (bigint) store: a page past the last
# notification is empty anyway, so this bounds only what the database can take,
# not what anyone sees.
MAX_OFFSET = 2**63 - 1
# One notification: any id but read-all, else this route would make the
# read-all resource appear to answer GET too (its Allow header would say so).
_ONE = "/api/v1/notifications/{id:(?!read-all$)[^{}/]+}"
HIDDEN_FIELDS = ("citizen",)
"""Fields of a stored notification the inbox never answers (see the module's text)."""


def _whole(text: str) -> int | None:
    """A whole number written in ASCII digits, or None (int() would also take "1_0" or " ٣")."""
    if not text.isascii() or not text.isdigit():
        return None
    return int(text)


Handler = Callable[["InboxApi", web.Request, Viewer], Awaitable[web.Response]]


def authenticated(handler: Handler) -> Callable[[InboxApi, web.Request],
                                               Awaitable[web.Response]]:
    """Resolve the bearer token to a viewer, or answer 401."""
    @functools.wraps(handler)
    async def wrapper(self: InboxApi, request: web.Request) -> web.Response:
        try:
            viewer = self._claims(request)[0]
        except tokens.TokenError as exc:
            return refused(exc)
        return await handler(self, request, viewer)
    return wrapper


def bearer_claims(request: web.Request, secret: bytes, policy: tokens.TokenPolicy,
                  revocations: RevocationList | None, allow_query: bool = False) -> tokens.Claims:
    """The claims of the request's valid, unrevoked bearer token (the inbox's and insight's)."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    if token is None and allow_query:
        token = request.query.get("access_token")
    claims = tokens.verify(secret, token, policy=policy)
    if revocations is not None and claims.jti in revocations.refresh():
        raise tokens.TokenError("the token was revoked", "revoked")
    return claims


def refused(exc: tokens.TokenError) -> web.Response:
    """The 401 answer to a refused token, counted by its reason."""
    metrics.INBOX_TOKENS_REFUSED.labels(exc.reason).inc()
    return error_response(401, "unauthorized", str(exc))


class InboxApi:
    """The inbox's HTTP handlers: each resolves the token to a viewer, then asks the store."""
    def __init__(self, store: InboxStorage, secret: bytes, broadcast: Broadcast,
                 case_urls: dict[str, str], *, policy: tokens.TokenPolicy | None = None,
                 revocations: RevocationList | None = None) -> None:
        self.store = store
        self.secret = secret
        self.broadcast = broadcast
        self.case_urls = case_urls
        self.policy = policy or tokens.TokenPolicy()
        self.revocations = revocations

    def routes(self, app: web.Application) -> None:
        """Register the API's routes on ``app``."""
        app.router.add_get("/api/v1/notifications", self.list)
        app.router.add_post("/api/v1/notifications/read-all", self.read_all)
        app.router.add_get(_ONE, self.get)
        app.router.add_post("/api/v1/notifications/{id}/read", self.read)
        app.router.add_post("/api/v1/notifications/{id}/feedback", self.feedback)
        app.router.add_get("/api/v1/stream", self.stream)
        app.router.add_get("/api/v1/me", self.me)

    def _claims(self, request: web.Request,
                allow_query: bool = False) -> tuple[Viewer, tokens.Claims]:
        """The viewer and claims of a valid, unrevoked token; TokenError otherwise."""
        claims = self.token_claims(request, allow_query)
        return Viewer(claims.department, claims.caseworker, claims.unit), claims

    def token_claims(self, request: web.Request, allow_query: bool = False) -> tokens.Claims:
        """The claims of the request's valid, unrevoked bearer token; TokenError otherwise."""
        return bearer_claims(request, self.secret, self.policy, self.revocations, allow_query)

    def _present(self, notification: dict[str, object]) -> dict[str, object]:
        """The notification's JSON as the page gets it: no pseudonym, a link to the case."""
        notification = {k: v for k, v in notification.items() if k not in HIDDEN_FIELDS}
        related = notification["related_case"]
        if not isinstance(related, dict):
            return notification
        pattern = self.case_urls.get(related.get("source", ""))
        url = case_link(pattern, related.get("id", "")) if pattern else None
        if url:
            notification["related_case"] = dict(related, url=url)
        return notification

    @authenticated
    async def me(self, _request: web.Request, viewer: Viewer) -> web.Response:
        """GET /api/v1/me: who the token says the caller is."""
        return json_response({"caseworker": viewer.caseworker, "department": viewer.department,
                              "unit": viewer.unit})

    @authenticated
    async def list(self, request: web.Request, viewer: Viewer) -> web.Response:
        """GET /api/v1/notifications: a page of the viewer's notifications, unread first."""
        query = request.query
        unread: bool | None = None
        if "unread" in query:
            if query["unread"] not in ("true", "false"):
                return error_response(400, "bad_request", "unread must be true or false")
            unread = query["unread"] == "true"
        severity = query.get("severity")
        if severity is not None and severity not in SEVERITY_ORDER:
            return error_response(400, "bad_request",
                           f"severity must be one of {', '.join(SEVERITY_ORDER)}")
        limit = _whole(query.get("limit", "50"))
        offset = _whole(query.get("offset", "0"))
        if limit is None or offset is None or not 1 <= limit <= MAX_PAGE or offset > MAX_OFFSET:
            return error_response(400, "bad_request", "limit and offset must be whole numbers: "
                           f"limit 1..{MAX_PAGE}, offset 0..{MAX_OFFSET}")
        items, total, unread_count = await self.store.list(
            viewer, unread=unread, severity=severity, limit=limit, offset=offset)
        return json_response({"items": [self._present(i.to_json()) for i in items], "total": total,
                      "unread": unread_count, "limit": limit, "offset": offset})

    @authenticated
    async def get(self, request: web.Request, viewer: Viewer) -> web.Response:
        """GET /api/v1/notifications/{id}: one notification the viewer may see, else 404."""
        item = await self.store.get(viewer, request.match_info["id"])
        if item is None:
            return error_response(404, "not_found", "no such notification")
        return json_response(self._present(item.to_json()))

    @authenticated
    async def read(self, request: web.Request, viewer: Viewer) -> web.Response:
        """POST /api/v1/notifications/{id}/read: mark one notification read (it stays read)."""
        if not await self.store.mark_read(viewer, request.match_info["id"]):
            return error_response(404, "not_found", "no such notification")
        return json_response({"id": request.match_info["id"], "read": True})

    @authenticated
    async def read_all(self, _request: web.Request, viewer: Viewer) -> web.Response:
        """POST /api/v1/notifications/read-all: mark all the viewer's notifications read."""
        marked = await self.store.mark_all_read(viewer)
        return json_response({"marked": marked})

    @authenticated
    async def feedback(self, request: web.Request, viewer: Viewer) -> web.Response:
        """POST /api/v1/notifications/{id}/feedback: was the notification useful, and why."""
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return error_response(400, "bad_request", "the body must be JSON: {\"useful\": true}")
        if not isinstance(body, dict) or not isinstance(body.get("useful"), bool):
            return error_response(422, "invalid_feedback", "useful must be true or false")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
            return error_response(422, "invalid_feedback",
                           f"reason must be a text of at most {MAX_REASON} characters")
        unknown = set(body) - {"useful", "reason"}
        if unknown:
            return error_response(422, "invalid_feedback",
                           f"unknown field(s): {', '.join(sorted(unknown))}")
        rule = await self.store.set_feedback(viewer, request.match_info["id"],
                                            body["useful"], reason)
        if rule is None:
            return error_response(404, "not_found", "no such notification")
        metrics.FEEDBACK.labels(rule, "useful" if body["useful"] else "not_useful").inc()
        return json_response({"id": request.match_info["id"], "useful": body["useful"]})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /api/v1/stream: new notifications for the viewer as Server-Sent Events."""
        try:
            viewer, claims = self._claims(request, allow_query=True)
        except tokens.TokenError as exc:
            return refused(exc)
        # Listen before the client learns the stream is open, so nothing that
        # arrives in between is missed.
        stream = self.broadcast.open(viewer, claims)
        return await run_stream(request, self.broadcast, stream,
                                lambda n: self._present(n.to_json()))

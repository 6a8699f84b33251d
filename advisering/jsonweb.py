"""JSON answers of the HTTP services (ingest and inbox): one body shape, one encoder.

An error is ``{"error": <machine-readable code>, "message": <for a person>}``
plus any extra fields; a 401 names the bearer realm, a 503 says when to retry.
Here rather than in :mod:`advisering.http` because the inbox, which the HTTP
server mounts, answers the same way.
"""

from __future__ import annotations

import orjson
from aiohttp import web

RETRY_AFTER_SECONDS = 5


def json_response(body: object, status: int = 200) -> web.Response:
    """``body`` as JSON (orjson), with ``status``."""
    return web.json_response(body, status=status, dumps=_dumps)


def error_response(status: int, error: str, message: str, **extra: object) -> web.Response:
    """An error answer: its code, its message for a person, and ``extra`` fields."""
    response = json_response({"error": error, "message": message, **extra}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="advisering"'
    elif status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()

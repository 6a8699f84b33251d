"""Bearer tokens for caseworkers: compact JWTs signed with HMAC-SHA256.

Subject is the caseworker id; ``unit`` lets them see notifications addressed
to their unit; ``exp`` bounds the token's life. The municipality's identity
provider can issue the same format; ``advisering token issue`` makes one for
development.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

import orjson

_HEADER = {"alg": "HS256", "typ": "JWT"}
_ID = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,63}$")
MIN_SECRET_BYTES = 32


class TokenError(ValueError):
    """Missing, malformed, forged or expired token (always answered with 401)."""


@dataclass(frozen=True)
class Claims:
    """What a valid token says: who, their unit, and when it expires (POSIX seconds)."""
    caseworker: str
    unit: str | None
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_secret(secret: bytes) -> bytes:
    """The secret, or TokenError when it is too short to sign tokens safely."""
    if len(secret) < MIN_SECRET_BYTES:
        raise TokenError(
            f"ADVISERING_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes "
            "(for example: openssl rand -hex 32)")
    return secret


def issue(secret: bytes, caseworker: str, unit: str | None = None, *,
          lifetime: int = 8 * 3600, now: float | None = None) -> str:
    """A signed token for ``caseworker`` valid ``lifetime`` seconds (default one work day)."""
    check_secret(secret)
    for value in (caseworker, unit):
        if value is not None and not _ID.match(value):
            raise TokenError(f"{value!r} is not a valid caseworker or unit id")
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {"sub": caseworker, "iat": issued, "exp": issued + lifetime}
    if unit:
        claims["unit"] = unit
    signing_input = f"{_b64(orjson.dumps(_HEADER))}.{_b64(orjson.dumps(claims))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def verify(secret: bytes, token: str | None, *, now: float | None = None) -> Claims:
    """The token's claims, or TokenError when it is missing, forged or expired."""
    if not token:
        raise TokenError("a bearer token is required")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
    try:
        signature = _unb64(parts[2])
        header = orjson.loads(_unb64(parts[0]))
        claims = orjson.loads(_unb64(parts[1]))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise TokenError("malformed token") from exc
    if not hmac.compare_digest(signature, expected) or header != _HEADER:
        raise TokenError("invalid token signature")
    if not isinstance(claims, dict):
        raise TokenError("malformed token")
    expires = claims.get("exp")
    subject = claims.get("sub")
    unit = claims.get("unit")
    if not isinstance(expires, int) or not isinstance(subject, str) or not _ID.match(subject):
        raise TokenError("malformed token claims")
    if expires <= (now if now is not None else time.time()):
        raise TokenError("token expired")
    return Claims(subject, unit if isinstance(unit, str) else None, expires)

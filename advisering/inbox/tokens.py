"""Bearer tokens for caseworkers: compact JWTs signed with HMAC-SHA256.

A token says who (``sub``: the caseworker id in the source system, which is
only unique within its department), in which department (``dept``) and,
optionally, unit (``unit``: they also see its unassigned notifications).
The inbox matches notifications on the pair (department, caseworker), so an
id two departments happen to share never shows one the other's inbox.

What a token must carry, else 401: the audience and issuer this inbox
expects (``aud``, ``iss``: a token minted for another service is no key
here), ``iat`` and ``exp`` with ``exp - iat`` at most the maximum lifetime
(a leaked token cannot be made to live for a year), no ``iat`` or ``nbf`` in
the future beyond the leeway for clock skew, and a ``jti`` so that one token
can be revoked (``advisering.inbox.revocation``). A token may carry
``roles``, a list of names from :data:`ROLES` (``insight``: may ask the
citizen's disclosure log, ``POST /api/v1/insight``); any other value, or a
``roles`` that is no list, refuses the whole token (401), so a misspelt or
invented role never passes silently. Ordinary caseworker tokens have none. The municipality's
identity provider can issue the same format; ``advisering token issue``
makes one for development and operations.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

_HEADER = {"alg": "HS256", "typ": "JWT"}
_ID = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,63}$")
_JTI = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MIN_SECRET_BYTES = 32
MAX_TOKEN_CHARS = 4096
"""A longer bearer value is refused before it is decoded (no work for a hostile caller)."""

# The defaults of ADVISERING_TOKEN_* (advisering.settings_tokens; a unit test keeps them equal).
DEFAULT_AUDIENCE = "advisering-inbox"
DEFAULT_ISSUER = "advisering"
DEFAULT_MAX_LIFETIME = 43_200
DEFAULT_LEEWAY = 60

ROLES = ("insight",)
"""The roles a token may carry, beyond being a caseworker's."""

REASONS = ("missing", "malformed", "signature", "claims", "audience", "issuer", "expired",
           "not_yet_valid", "lifetime", "revoked")
"""Why a token was refused: the bounded label of advisering_inbox_tokens_refused_total."""


class TokenError(ValueError):
    """Missing, malformed, forged, foreign, expired or revoked token (always answered with 401)."""

    def __init__(self, message: str, reason: str = "claims") -> None:
        super().__init__(message)
        self.reason = reason if reason in REASONS else "claims"


@dataclass(frozen=True)
class TokenPolicy:
    """What this inbox requires of a token: its audience and issuer, lifetime and leeway."""

    audience: str = DEFAULT_AUDIENCE
    issuer: str = DEFAULT_ISSUER
    max_lifetime: int = DEFAULT_MAX_LIFETIME
    leeway: int = DEFAULT_LEEWAY

    @classmethod
    def from_settings(cls, settings: Any) -> TokenPolicy:
        """The policy of ``Settings`` (its ``token_*`` fields)."""
        return cls(settings.token_audience, settings.token_issuer,
                   settings.token_max_lifetime_seconds, settings.token_leeway_seconds)


@dataclass(frozen=True)
class Claims:
    """What a valid token says: who, in which department and unit, its id and its times."""

    caseworker: str
    department: str
    unit: str | None
    expires: int
    issued: int
    jti: str
    roles: frozenset[str] = frozenset()


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


def new_jti() -> str:
    """A random token id (128 bits), what ``advisering token revoke`` names."""
    return secrets.token_hex(16)


def sign(secret: bytes, claims: dict[str, object]) -> str:
    """``claims`` as a signed compact JWT, as they are (``issue`` checks them; tests forge)."""
    signing_input = f"{_b64(orjson.dumps(_HEADER))}.{_b64(orjson.dumps(claims))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def issue(secret: bytes, caseworker: str, department: str, unit: str | None = None, *,
          policy: TokenPolicy = TokenPolicy(), lifetime: int = 8 * 3600,
          now: float | None = None, jti: str | None = None,
          roles: tuple[str, ...] = ()) -> str:
    """A signed token for ``caseworker`` of ``department``, valid ``lifetime`` seconds.

    The default lifetime is one work day; more than the policy's maximum is
    refused here as it would be at verification.
    """
    check_secret(secret)
    for value in (caseworker, department, unit):
        if value is not None and not _ID.match(value):
            raise TokenError(f"{value!r} is not a valid caseworker, department or unit id")
    if not 0 < lifetime <= policy.max_lifetime:
        raise TokenError(f"a token lives 1 to {policy.max_lifetime} seconds "
                         "(ADVISERING_TOKEN_MAX_LIFETIME_SECONDS)", "lifetime")
    token_id = jti if jti is not None else new_jti()
    if not _JTI.match(token_id):
        raise TokenError(f"{token_id!r} is not a valid token id")
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "iss": policy.issuer, "aud": policy.audience, "sub": caseworker, "dept": department,
        "iat": issued, "nbf": issued, "exp": issued + lifetime, "jti": token_id}
    if unit:
        claims["unit"] = unit
    if roles:
        claims["roles"] = sorted(_roles(list(roles)))
    return sign(secret, claims)


def _roles(value: object) -> frozenset[str]:
    """The ``roles`` claim: absent, or a list of distinct names from ROLES; else TokenError."""
    if value is None:
        return frozenset()
    if (not isinstance(value, list) or len(value) > len(ROLES)
            or not all(isinstance(r, str) and r in ROLES for r in value)
            or len(set(value)) != len(value)):
        raise TokenError(f"the token's roles must be a list of distinct names from "
                         f"{', '.join(ROLES)}", "claims")
    return frozenset(value)


def _decode(secret: bytes, token: str | None) -> dict[str, Any]:
    """The signed claims of ``token``; TokenError when it is missing, malformed or forged."""
    if not token:
        raise TokenError("a bearer token is required", "missing")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed token", "malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token", "malformed")
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
    try:
        signature = _unb64(parts[2])
        header = orjson.loads(_unb64(parts[0]))
        claims = orjson.loads(_unb64(parts[1]))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise TokenError("malformed token", "malformed") from exc
    if not hmac.compare_digest(signature, expected) or header != _HEADER:
        raise TokenError("invalid token signature", "signature")
    if not isinstance(claims, dict):
        raise TokenError("malformed token", "malformed")
    return claims


def _number(claims: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    # bool is an int in Python, never a time in a token.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise TokenError(f"the token's {name} must be a whole number of seconds", "claims")
    return value


def _audience_matches(value: object, audience: str) -> bool:
    """``aud`` is one string, or a list of them (RFC 7519); ours must be among them."""
    if isinstance(value, str):
        return value == audience
    return isinstance(value, list) and len(value) <= 20 and audience in value


def verify(secret: bytes, token: str | None, *, policy: TokenPolicy = TokenPolicy(),
           now: float | None = None) -> Claims:
    """The token's claims, or TokenError saying why it is refused (see the module's text)."""
    claims = _decode(secret, token)
    if not _audience_matches(claims.get("aud"), policy.audience):
        raise TokenError("the token is not meant for this inbox (aud)", "audience")
    if claims.get("iss") != policy.issuer:
        raise TokenError("the token is from an unknown issuer (iss)", "issuer")
    subject, department = claims.get("sub"), claims.get("dept")
    unit, jti = claims.get("unit"), claims.get("jti")
    if not (isinstance(subject, str) and _ID.match(subject)
            and isinstance(department, str) and _ID.match(department)
            and (unit is None or (isinstance(unit, str) and _ID.match(unit)))
            and isinstance(jti, str) and _JTI.match(jti)):
        raise TokenError("the token needs sub, dept and jti (and a valid unit, if any)")
    expires, issued = _number(claims, "exp"), _number(claims, "iat")
    not_before = _number(claims, "nbf", required=False)
    assert expires is not None and issued is not None
    moment = now if now is not None else time.time()
    if expires - issued > policy.max_lifetime or expires <= issued:
        raise TokenError("the token lives longer than this inbox allows", "lifetime")
    if issued > moment + policy.leeway or (
            not_before is not None and not_before > moment + policy.leeway):
        raise TokenError("the token is not valid yet", "not_yet_valid")
    if expires <= moment:
        raise TokenError("token expired", "expired")
    roles = _roles(claims.get("roles"))
    return Claims(subject, department, unit, expires, issued, jti, roles)

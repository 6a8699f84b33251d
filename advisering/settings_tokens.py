"""The caseworker token and live-stream settings, a part of the one ``Settings`` object.

Kept in their own module so ``advisering.settings`` stays readable. The
token fields are read by ``advisering.inbox.tokens.TokenPolicy`` and the
revocation list (``advisering.inbox.revocation``); the ``sse_*`` fields bound
what one open live stream may hold and how long a write to it may take.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings


class InboxTokenSettings(BaseSettings):
    """``ADVISERING_TOKEN_*`` and ``ADVISERING_SSE_*`` fields (read only through ``Settings``)."""

    token_audience: str = Field(
        default="advisering-inbox", min_length=1, max_length=200,
        description="the `aud` every caseworker token must carry (else 401)",
    )
    token_issuer: str = Field(
        default="advisering", min_length=1, max_length=200,
        description="the `iss` every caseworker token must carry (else 401)",
    )
    token_max_lifetime_seconds: int = Field(
        default=43_200, ge=60, le=7 * 86_400,
        description="longest a token may live, `exp - iat` (60 s to 7 days); checked when "
        "`token issue` makes one and when the inbox verifies one",
    )
    token_leeway_seconds: int = Field(
        default=60, ge=0, le=600,
        description="clock skew allowed for a token's `nbf` and `iat` (0 to 600 s); a token "
        "not yet valid beyond it is 401",
    )
    token_revocation_file: Path | None = Field(
        default=None,
        description="revoked token ids (`advisering token revoke`); none means "
        "`token-revocations.jsonl` beside the inbox database. Serve rereads it when it "
        "changes, without a restart",
    )
    token_revocation_max_bytes: int = Field(
        default=1_048_576, ge=1024, le=64 * 1_048_576,
        description="largest revocation file serve reads (1 KiB to 64 MiB); a larger one "
        "is refused and the last good list kept",
    )
    token_revocation_max_entries: int = Field(
        default=10_000, ge=1, le=1_000_000,
        description="most revoked token ids in the file; more is refused and the last good "
        "list kept",
    )
    token_revocation_check_seconds: float = Field(
        default=1.0, gt=0, le=60,
        description="how often serve checks the revocation file for a change (its size "
        "and modification time)",
    )
    sse_queue_max: int = Field(
        default=100, ge=1, le=10_000,
        description="notifications queued for one live stream; a client that falls further "
        "behind is sent `event: reload` and dropped",
    )
    sse_streams_per_token: int = Field(
        default=3, ge=1, le=100,
        description="open live streams per token (`jti`); one more closes the oldest",
    )
    sse_write_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300,
        description="longest one write to a live stream may take before it is dropped",
    )

    @field_validator("token_revocation_file", mode="before")
    @classmethod
    def _empty_revocation_file(cls, value: object) -> object:
        # An empty variable (a template's blank value) means the default, not the path ".".
        return None if isinstance(value, str) and not value.strip() else value

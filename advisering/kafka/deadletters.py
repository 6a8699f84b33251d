"""Dead letters: rejected input kept with its reason, and no CPR number.

The original payload is kept (so an operator can see what was wrong and the
source system can resend it) after every CPR-shaped value has been redacted,
and cut to a bounded size.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from advisering.events import Rejection
from advisering.privacy import redact, redact_value

MAX_PAYLOAD_CHARS = 16_384


_NOT_PARSED = object()


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem of the rejected input (CPR numbers redacted)."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The value of a dead-letter record; the field order is its JSON's."""

    reason: str
    path: str
    message: str
    problems: tuple[Problem, ...]
    source: str
    event_id: str | None
    topic: str
    partition: int | None
    offset: int | None
    received: str
    payload: str
    payload_truncated: bool

    def encode(self) -> bytes:
        """The record's value: this JSON, fields in declaration order."""
        return orjson.dumps(self)


def _parse(payload: bytes | None) -> object:
    """The decoded payload, or _NOT_PARSED when it is not JSON (or too deep for orjson)."""
    try:
        return orjson.loads(payload or b"")
    except orjson.JSONDecodeError:
        return _NOT_PARSED


def _redacted_payload(payload: bytes | None, decoded: object) -> str:
    """The payload as text with CPR numbers redacted in every disguise, also inside escapes.

    JSON is decoded, redacted value by value (iteratively, any depth) and
    encoded again; when it cannot be encoded again (deeper than orjson
    writes) or is not JSON, the text itself is redacted, which decodes JSON
    escapes, percent-encoding and HTML references before matching.
    """
    if decoded is not _NOT_PARSED:
        try:
            return orjson.dumps(redact_value(decoded)).decode()
        except orjson.JSONEncodeError:
            pass
    return redact((payload or b"").decode("utf-8", errors="replace"))


def _source_of(decoded: object) -> str:
    source = decoded.get("source") if isinstance(decoded, dict) else None
    return redact(source) if isinstance(source, str) and source else "unknown"


def _event_id_of(decoded: object) -> str | None:
    value = decoded.get("id") if isinstance(decoded, dict) else None
    return redact(value) if isinstance(value, str) else None


def dead_letter(
    rejection: Rejection, payload: bytes | None, *, topic: str, partition: int | None,
    offset: int | None, received: str,
) -> tuple[bytes, bytes]:
    """(key, value) of the dead-letter record for a rejected input; key is the source."""
    decoded = _parse(payload)
    text = _redacted_payload(payload, decoded)
    truncated = len(text) > MAX_PAYLOAD_CHARS
    source = _source_of(decoded)
    letter = DeadLetter(
        reason=rejection.reason.value,
        path=redact(rejection.path),
        message=redact(rejection.message),
        problems=tuple(Problem(redact(p), redact(m)) for p, m in rejection.problems),
        source=source,
        event_id=_event_id_of(decoded),
        topic=topic,
        partition=partition,
        offset=offset,
        received=received,
        # Cutting can leave ten digits of a longer run at the end: redact again.
        payload=redact(text[:MAX_PAYLOAD_CHARS]) if truncated else text,
        payload_truncated=truncated,
    )
    return source.encode(), letter.encode()

"""Dead letters: rejected input kept with its reason, and no CPR number.

The original payload is kept (so an operator can see what was wrong and the
source system can resend it) after every CPR-shaped value has been redacted,
and cut to a bounded size.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from advisering.events import Rejection
from advisering.jsondepth import json_too_deep
from advisering.privacy import redact, redact_value

MAX_PAYLOAD_CHARS = 16_384
# Deeper than this, a payload is kept as redacted text, never decoded: the
# redaction walk and orjson's serialiser (255 levels) must not meet deep JSON.
MAX_DECODED_DEPTH = 64
# A \uXXXX escape outside the surrogates: decoded before a text redaction, so an
# escaped digit cannot hide a CPR number from it.
_UNICODE_ESCAPE = re.compile(r"\\u(?![dD][89a-fA-F])([0-9a-fA-F]{4})")


def _redacted_text(text: str) -> str:
    return redact(_UNICODE_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text))


def _redacted_payload(payload: bytes | None) -> str:
    """The payload as text with CPR numbers redacted, also inside JSON escapes."""
    text = (payload or b"").decode("utf-8", errors="replace")
    if json_too_deep(payload or b"", MAX_DECODED_DEPTH):
        return _redacted_text(text)
    try:
        decoded = orjson.loads(payload or b"")
    except orjson.JSONDecodeError:
        return _redacted_text(text)
    try:
        return orjson.dumps(redact_value(decoded)).decode()
    except (RecursionError, orjson.JSONEncodeError):
        return _redacted_text(text)


def _source_of(payload: bytes | None) -> str:
    try:
        raw = orjson.loads(payload or b"")
    except orjson.JSONDecodeError:
        return "unknown"
    source = raw.get("source") if isinstance(raw, dict) else None
    return redact(source) if isinstance(source, str) and source else "unknown"


def _event_id_of(payload: bytes | None) -> str | None:
    try:
        raw = orjson.loads(payload or b"")
    except orjson.JSONDecodeError:
        return None
    value = raw.get("id") if isinstance(raw, dict) else None
    return redact(value) if isinstance(value, str) else None


def dead_letter(
    rejection: Rejection, payload: bytes | None, *, topic: str, partition: int | None,
    offset: int | None, received: str,
) -> tuple[bytes, bytes]:
    """(key, value) of the dead-letter record for a rejected input; key is the source."""
    text = _redacted_payload(payload)
    truncated = len(text) > MAX_PAYLOAD_CHARS
    source = _source_of(payload)
    record: dict[str, Any] = {
        "reason": rejection.reason.value,
        "path": redact(rejection.path),
        "message": redact(rejection.message),
        "problems": [{"path": redact(p), "message": redact(m)} for p, m in rejection.problems],
        "source": source,
        "event_id": _event_id_of(payload),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "received": received,
        "payload": text[:MAX_PAYLOAD_CHARS],
        "payload_truncated": truncated,
    }
    return source.encode(), orjson.dumps(record)

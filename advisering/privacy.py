"""CPR numbers: detection, keyed pseudonyms and redaction.

No CPR number may reach a topic, a log line or a metric. The publishing edge
turns each CPR number given as a party into a pseudonym (HMAC-SHA256 keyed with
the municipality's secret), and everything downstream works on pseudonyms
only. Any other CPR-shaped value is refused at the edge and, should one slip
through, dead-lettered by the worker with the value redacted.

A pseudonym is ``ps1-`` followed by the lower-case base32 of the HMAC. The
base32 alphabet has no 0, 1, 8 or 9, so a pseudonym can never itself look like
a CPR number (a CPR month always starts with 0 or 1).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterator
from typing import Any

import orjson

PSEUDONYM_PREFIX = "ps1-"
REDACTED = "[CPR-REDACTED]"

# Ten digits, optionally with a hyphen after the sixth, not glued to other
# digits or hex letters: hex ids and UUIDs (ab010180-1234-..., sha256 digests)
# are not CPR numbers, while "cpr0101801234" still is. Whether ten digits are
# a CPR number is then decided by the date.
_CPR_SHAPE = re.compile(r"(?<![0-9a-fA-F])([0-9]{6})-?([0-9]{4})(?![0-9a-fA-F])")
_PSEUDONYM = re.compile(r"^ps1-[a-z2-7]{52}$")


def _birth_century(year2: int, seventh: int) -> list[int]:
    """Centuries a CPR number's seventh digit allows (the CPR office's table)."""
    if seventh <= 3:
        return [1900]
    if seventh in (4, 9):
        return [2000] if year2 <= 36 else [1900]
    return [2000] if year2 <= 57 else [1800]


def _valid_date(digits6: str, seventh: int) -> bool:
    day, month, year2 = int(digits6[:2]), int(digits6[2:4]), int(digits6[4:6])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    for century in _birth_century(year2, seventh):
        try:
            dt.date(century + year2, month, day)
        except ValueError:
            continue
        return True
    return False


def find_cprs(text: str) -> list[str]:
    """Every CPR number (valid date, with or without hyphen) inside ``text``."""
    found = []
    for match in _CPR_SHAPE.finditer(text):
        if _valid_date(match.group(1), int(match.group(2)[0])):
            found.append(match.group(0))
    return found


def is_cpr(value: str) -> bool:
    """True when ``value`` is exactly one CPR number."""
    match = _CPR_SHAPE.fullmatch(value.strip())
    return match is not None and _valid_date(match.group(1), int(match.group(2)[0]))


def normalise_cpr(value: str) -> str:
    """The ten digits of a CPR number, without hyphen or spaces."""
    return value.strip().replace("-", "")


def pseudonymise(cpr: str, key: bytes) -> str:
    """The municipality-wide pseudonym of a CPR number (HMAC-SHA256 with ``key``).

    The same CPR number gives the same pseudonym in every source system that
    shares the key; without the key it cannot be reversed or recomputed.
    """
    if not is_cpr(cpr):
        raise ValueError("not a CPR number")
    digest = hmac.new(key, normalise_cpr(cpr).encode("ascii"), hashlib.sha256).digest()
    return PSEUDONYM_PREFIX + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def is_pseudonym(value: str) -> bool:
    return bool(_PSEUDONYM.match(value))


def redact(text: str) -> str:
    """``text`` with every CPR number replaced by a marker."""
    def replace(match: re.Match[str]) -> str:
        if _valid_date(match.group(1), int(match.group(2)[0])):
            return REDACTED
        return match.group(0)

    return _CPR_SHAPE.sub(replace, text)


# ASCII digits -> "0", "-" stays, every other byte -> "x" (UTF-8 never hides an ASCII digit).
_DIGIT_SHAPE = bytes(48 if 48 <= i <= 57 else 45 if i == 45 else 120 for i in range(256))
# The shapes of a CPR number in that alphabet: ten digits, or six, a hyphen and four.
_RUN_OF_TEN = b"0" * 10
_RUN_SPLIT = b"0" * 6 + b"-" + b"0" * 4


def json_may_hold_cpr(payload: bytes) -> bool:
    """False only when no key or value of the JSON text ``payload`` can hold a CPR number.

    A CPR number needs ten ASCII digits in a row, or six, a hyphen and four,
    in the raw text, unless an escape (a backslash) hides one. Two C-speed
    passes over the bytes; it spares the decoded walk of :func:`cpr_paths`.
    """
    if b"\\" in payload:
        return True
    shape = payload.translate(_DIGIT_SHAPE)
    return _RUN_OF_TEN in shape or _RUN_SPLIT in shape


def may_hold_cpr(value: Any) -> bool:
    """False only when no key, string or number in ``value`` can be a CPR number.

    A cheap necessary condition (one serialisation, then :func:`json_may_hold_cpr`)
    that spares :func:`cpr_paths` its walk for the vast majority of events;
    anything that does not serialise is walked.
    """
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return True
    return json_may_hold_cpr(text)


def cpr_paths(value: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of every string (or key) in a JSON value that holds a CPR number."""
    if not path and not may_hold_cpr(value):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            child = redact(f"{path}.{key}" if path else str(key))
            if find_cprs(str(key)):
                yield child
            yield from cpr_paths(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from cpr_paths(item, f"{path}[{index}]")
    elif isinstance(value, str | int) and not isinstance(value, bool) and find_cprs(str(value)):
        yield path


def redact_value(value: Any) -> Any:
    """A JSON value with every CPR number in keys, strings and integers redacted."""
    if isinstance(value, dict):
        return {redact(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int) and not isinstance(value, bool) and find_cprs(str(value)):
        return REDACTED
    return value

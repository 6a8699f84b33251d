"""CPR numbers: detection, keyed pseudonyms and redaction.

No CPR number may reach a topic, a log line or a metric. The publishing edge
turns each CPR number given as a party into a pseudonym (HMAC-SHA256 keyed with
the municipality's secret), and everything downstream works on pseudonyms
only. Any other CPR number is refused at the edge and, should one slip
through, dead-lettered by the worker with the value redacted.

What counts as a CPR number, in whatever disguise (separators, Unicode
digits, zero-width characters, percent-encoding, numbers), is decided by
:mod:`advisering.cpr_text`; this module applies it to JSON values (every key,
string and number, walked iteratively), to raw JSON bytes (a cheap, sound
pre-check) and to redaction.

The pseudonyms themselves are made in :mod:`advisering.pseudonyms` (and
exported here, where every caller finds them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from advisering.cpr_text import find_hits, number_digits, single_cpr, valid_date
from advisering.pseudonyms import (
    PSEUDONYM_PATTERN,
    PSEUDONYM_PREFIX,
    cpr_digits,
    is_pseudonym,
    pseudonym_of_digits,
    pseudonymise,
)

REDACTED = "[CPR-REDACTED]"
# A text with more CPR numbers than this is redacted whole (bounded work).
MAX_HITS = 256

# The characters that delimit JSON values: the fallback redaction of text
# replaces a whole segment between two of them.
_JSON_SEGMENT = re.compile(r'[^{}\[\],:"]+')

__all__ = [
    "MAX_HITS", "PSEUDONYM_PATTERN", "PSEUDONYM_PREFIX", "REDACTED", "cpr_digits", "cpr_paths",
    "find_cprs", "is_cpr", "is_pseudonym", "json_may_hold_cpr", "may_hold_cpr", "normalise_cpr",
    "number_is_cpr", "pseudonym_of_digits", "pseudonymise",
    "redact", "redact_value", "valid_date",
]


def find_cprs(text: str) -> list[str]:
    """Every CPR number inside ``text``, in any disguise, as written in ``text``.

    Matching works on the normalised text (see :mod:`advisering.cpr_text`):
    ``ddmmyy ssss``, ``dd.mm.yy-ssss``, Unicode digits, zero-width characters,
    percent-encoding, digits glued to letters and exponent-form numbers count.
    """
    return [text[hit.start:hit.end] for hit in find_hits(text)]


def number_is_cpr(value: float) -> bool:
    """True when a JSON number stands for a CPR number (ten digits, nine that lost a 0, floats)."""
    return number_digits(value) is not None


def is_cpr(value: str) -> bool:
    """True when ``value`` is exactly one CPR number: ten digits, separators allowed.

    ``ddmmyy ssss``, ``dd.mm.yy-ssss`` and full-width digits are the same CPR
    number as ``ddmmyyssss`` (birth date, then four digits); text around the digits is not.
    """
    return single_cpr(value) is not None


def normalise_cpr(value: str) -> str:
    """The ten ASCII digits of a CPR number written in any accepted form."""
    digits = single_cpr(value)
    if digits is None:
        raise ValueError("not a CPR number")
    return digits


def _spans_replaced(text: str) -> str | None:
    """``text`` with the smallest span of each hit replaced (all of it past MAX_HITS).

    None when ``text`` holds no CPR number.
    """
    hits = find_hits(text, MAX_HITS + 1)
    if not hits:
        return None
    if len(hits) > MAX_HITS:
        return REDACTED
    return _replace_spans(text, [(hit.start, hit.end) for hit in hits])


def redact(text: str) -> str:
    """``text`` with every CPR number (in any disguise) replaced by :data:`REDACTED`.

    The smallest original span that holds the digits of each hit is replaced.
    Should the result still hold a CPR number under normalisation (decoding
    can make that possible), each segment between JSON delimiters that holds
    one is replaced whole, and failing that the whole text: the result never
    holds a CPR number.
    """
    result = _spans_replaced(text)
    if result is None:
        return text
    if not find_hits(result, 1):
        return result
    result = _JSON_SEGMENT.sub(
        lambda m: REDACTED if find_hits(m.group(), 1) else m.group(), result)
    return result if not find_hits(result, 1) else REDACTED


def _redact_string(text: str) -> str:
    """A JSON string value redacted: the smallest span, else the whole value."""
    result = _spans_replaced(text)
    if result is None:
        return text
    return result if not find_hits(result, 1) else REDACTED


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, position = [], 0
    for start, end in merged:
        parts.append(text[position:start])
        parts.append(REDACTED)
        position = end
    parts.append(text[position:])
    return "".join(parts)


# The raw-bytes pre-check. ASCII separators are deleted; an ASCII digit or a
# byte of a non-ASCII character (which may be, or normalise to, digits or
# separators, or be removed) becomes "0"; a backslash or "%" (escapes that may
# hide anything) "E"; "&" stays; anything else "x". Ten digits with separators
# between them are then ten "0"s in a row: a non-ASCII character normalises to
# at most as many digits as it has UTF-8 bytes (a test checks every code point).
_SEPARATOR_BYTES = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f./_-"
_SQUEEZE = bytes(
    48 if 48 <= i <= 57 or i >= 128 else 69 if i in (37, 92) else 38 if i == 38 else 120
    for i in range(256)
)
_TEN = b"0" * 10
# ASCII only (a non-ASCII character may be removed or be a separator, so it
# cannot be placed in a group): digits "0", separators "s", anything else "x".
# Ten digits of whole groups joined by separators, as cpr_text's windows: case
# ids such as SKOLE-A19226-0000006 (twelve digits over two groups) are clear.
_GROUPS = bytes(48 if 48 <= i <= 57 else 115 if bytes([i]) in _SEPARATOR_BYTES else 120
                for i in range(256))
_WHOLE_TEN = re.compile(rb"(?<!0)0(?:s*0){9}(?!0)")
# For numbers, with blanks and signs deleted: a digit or "." "0", e/E "e", a
# byte before a JSON value (":", ",", "[") "n", a quote "q", non-ASCII "u",
# anything else "x". (A dot counting as a digit only makes the test wider.)
_NUMERIC = bytes(
    48 if 48 <= i <= 57 or i == 46 else 101 if i in (69, 101)
    else 110 if i in (58, 44, 91) else 113 if i == 34 else 117 if i >= 128 else 120
    for i in range(256)
)
_BLANKS_AND_SIGNS = b" \t\n\r+-"
_NINE_AFTER = b"n000000000"
# A JSON number with an exponent (or at the top of the payload), and a JSON
# string made only of what an exponent-form number normalises from.
_EXPONENT_NUMBER = re.compile(rb"n0+e")
_TOP_NUMBER = re.compile(rb"0(?:0*e|00000000)")
_NUMERIC_STRING = re.compile(rb"q[0eu]*q")
_ENTITY = re.compile(rb"&[#A-Za-z]")
# JSON strings that are wholly an exempt token of advisering.cpr_text (a UUID,
# a hex id): a subset of what the walk exempts, found fast (they start with '"').
_H8 = rb"[0-9A-Fa-f]{8}"
_EXEMPT = re.compile(
    rb'"' + _H8 + rb"(?:-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|" + _H8
    + rb"(?:" + _H8 + rb"(?:" + _H8 + rb"(?:" + _H8 + rb"(?:" + _H8 * 3 + rb")?)?)?)?)" + rb'"'
)


def json_may_hold_cpr(payload: bytes) -> bool:
    """False only when no key or value of the JSON text ``payload`` can hold a CPR number.

    Sound for every disguise :func:`cpr_paths` finds (a hypothesis test checks
    it), and cheap: two C-speed translations of the bytes and substring
    tests, regular expressions only when those find something. True when an
    escape could hide digits (a backslash, ``%``, an HTML character
    reference); when ten digits stand together with only separators or
    non-ASCII characters between them (outside UUIDs and hex ids, looked at
    only when the first look finds ten); when a number (outside strings,
    looked for there only when the whole text has the shape of one: a
    time's ``:56.846539`` has it) has nine digits or an exponent; or when a
    string could be an exponent-form number.
    """
    squeezed = payload.translate(_SQUEEZE, _SEPARATOR_BYTES)
    if b"E" in squeezed or (b"&" in squeezed and _ENTITY.search(payload)):
        return True
    if _TEN in squeezed:
        unexempt = _EXEMPT.sub(b'""', payload)
        if _TEN in unexempt.translate(_SQUEEZE, _SEPARATOR_BYTES) and (
                not payload.isascii() or _WHOLE_TEN.search(unexempt.translate(_GROUPS))):
            return True
    shape = payload.translate(_NUMERIC, _BLANKS_AND_SIGNS)
    if (_NINE_AFTER in shape or b"n0" in shape) and _number_outside_strings(shape):
        return True
    if shape[:1] == b"0" and _TOP_NUMBER.match(shape):
        return True
    # A UUID of digits and e's has a number's shape; the walk exempts it, so look again
    # without exempt strings (rarely: only when the first look finds such a string).
    return _string_may_be_number(shape) and _string_may_be_number(
        _EXEMPT.sub(b'""', payload).translate(_NUMERIC, _BLANKS_AND_SIGNS))


def _string_may_be_number(shape: bytes) -> bool:
    """Whether a payload's shape has a string that could be an exponent-form number."""
    if b"u" in shape:
        return any((b"0" in m.group() or b"u" in m.group()) and (b"e" in m.group() or b"u" in
                   m.group()) for m in _NUMERIC_STRING.finditer(shape))
    return _ascii_exponent_string(shape)


def _number_outside_strings(shape: bytes) -> bool:
    """Whether a payload's shape has a number of nine or more digits, or with an exponent.

    For a payload without backslashes: every quote then opens or closes a
    string, so a match preceded by an even number of quotes is outside one.
    A JSON number, and the ``:``, ``,`` or ``[`` before it, never is in a
    string; what this no longer counts is digits inside strings (a time's
    ``:56.846539``), which the string checks look at. Quotes are counted
    from one match to the next, so the work stays linear in the payload.
    """
    quotes = counted = 0
    position = shape.find(_NINE_AFTER)
    while position != -1:
        quotes += shape.count(b"q", counted, position)
        counted = position
        if not quotes % 2:
            return True
        position = shape.find(_NINE_AFTER, position + 1)
    if b"n0" not in shape or _EXPONENT_NUMBER.search(shape) is None:
        return False
    quotes = counted = 0
    for match in _EXPONENT_NUMBER.finditer(shape):
        quotes += shape.count(b"q", counted, match.start())
        counted = match.start()
        if not quotes % 2:
            return True
    return False


def _ascii_exponent_string(shape: bytes) -> bool:
    """Whether an ASCII payload's shape has a string of digits and dots, e, digits (2.1e9)."""
    position = shape.find(b"0e0")
    while position != -1:
        start = shape.rfind(b"q", 0, position) + 1
        end = shape.find(b"q", position)
        if end == -1:
            return False
        if not shape[start:end].translate(None, b"0e"):
            return True
        position = shape.find(b"0e0", end)  # each stretch between quotes is read once
    return False


def may_hold_cpr(value: Any) -> bool:
    """False only when no key, string or number in ``value`` can be a CPR number.

    A cheap necessary condition (one serialisation, then :func:`json_may_hold_cpr`)
    that spares :func:`cpr_paths` its walk for the vast majority of events;
    anything that does not serialise (too deep, foreign types) is walked.
    """
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return True
    return json_may_hold_cpr(text)


def _leaf_holds_cpr(value: Any) -> bool:
    if isinstance(value, str):
        return bool(find_hits(value, 1))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_digits(value) is not None
    return False


def cpr_paths(value: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of every key, string or number in a JSON value that holds a CPR number.

    Paths are redacted as they are yielded (keys, and what joined keys could
    spell): the walk itself builds them as plain text, so a clean event costs
    one check per key and leaf. The walk is iterative (any depth), in
    document order; at the top it first asks the cheap :func:`may_hold_cpr`.
    """
    if not path and not may_hold_cpr(value):
        return
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            children: list[tuple[str, Any]] = []
            for key, child in item.items():
                name = str(key)
                hit = bool(find_hits(name, 1))
                if hit:  # on its own (an exponent-form key is a CPR only as a whole)
                    name = redact(name)
                child_path = f"{where}.{name}" if where else name
                if hit:
                    children.append((child_path, _KEY_HIT))
                children.append((child_path, child))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{index}]", child)
                         for index, child in reversed(list(enumerate(item))))
        elif item is _KEY_HIT or _leaf_holds_cpr(item):
            yield redact(where)


# Marks, on the walk's stack, a key that holds a CPR number.
_KEY_HIT = object()


def redact_value(value: Any) -> Any:
    """A JSON value with every CPR number in keys, strings and numbers redacted.

    Iterative (any depth). A string keeps its text around a redacted span; a
    number that is a CPR number becomes the marker.
    """
    root: list[Any] = [None]
    # (container to fill, slot in it, value to copy)
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        target, slot, item = stack.pop()
        if isinstance(item, dict):
            copied: dict[str, Any] = {}
            _assign(target, slot, copied)
            pending = []
            for key, child in item.items():
                name = _redact_string(str(key))
                copied[name] = None
                pending.append((copied, name, child))
            stack.extend(reversed(pending))
        elif isinstance(item, list | tuple):
            items: list[Any] = [None] * len(item)
            _assign(target, slot, items)
            stack.extend((items, index, child) for index, child in enumerate(item))
        elif isinstance(item, str):
            _assign(target, slot, _redact_string(item))
        elif _leaf_holds_cpr(item):
            _assign(target, slot, REDACTED)
        else:
            _assign(target, slot, item)
    return root[0]


def _assign(target: Any, slot: Any, value: Any) -> None:
    target[slot] = value

"""How deeply JSON text nests, read from the bytes before any parser sees them.

Why: deep JSON is cheap to send and expensive to take apart. A parser or a
recursive walk (redaction, serialisation) on a thousand levels ends in a
RecursionError or a refused serialisation, which is how one request once
answered 500 and one record broke a worker's batch. So the depth is measured
on the raw bytes first, and nothing deeper than the limit is parsed at all.

How, cheaply: the number of ``[`` and ``{`` bounds the depth, so an ordinary
event (a handful of brackets) costs two C-speed counts and nothing more.
Only text with more brackets than the limit is looked at closely, with
C-speed steps that are each linear in its length (no regular expression here
can backtrack): escapes (a backslash and the character after it) are cut
out, then the strings (every other piece between quotes: once the escapes
are gone, every quote opens or closes one), then every byte but the
brackets. What is left, the structure alone, is measured by removing the
innermost ``()`` pairs round by round (a balanced structure of depth d is
gone after d rounds); only a structure that is deeper than the limit or not
balanced is walked bracket by bracket, and that walk stops at the limit.

The walk the issue proposed (a regular expression over every quote,
backslash and bracket, tracking strings in Python) gives the same answer;
this way a thousand-event ingest batch (450 kB) costs about 3 ms instead of
about 24 ms on the development machine, as the strings are skipped in C.

Text that is not JSON still gets an answer; it may differ from what a
parser would say, but such text is refused as not JSON anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the character it escapes
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in _BRACKETS)
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"(())")
_OPEN = ord("(")


def _structure(payload: bytes) -> bytes:
    """The brackets of ``payload`` outside strings, as ``(`` and ``)``."""
    text = payload
    if b"\\" in text:
        text = _ESCAPE.sub(b"", text)
    if b'"' in text:
        text = b"".join(text.split(b'"')[::2])
    return text.translate(_OPEN_CLOSE, _NOT_BRACKETS)


def _deepest(structure: bytes, stop: int) -> int:
    """The deepest nesting in ``structure``; the walk ends once it passes ``stop``."""
    depth = deepest = 0
    for byte in structure:
        if byte == _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop:
                    break
        elif depth:
            depth -= 1
    return deepest


def json_too_deep(payload: bytes, limit: int) -> bool:
    """True when ``payload`` nests arrays and objects more than ``limit`` levels deep."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False  # fewer brackets than the limit: no need to look closer
    structure = _structure(payload)
    rest = structure
    for _ in range(limit):  # a balanced structure of depth d is gone after d rounds
        shorter = rest.replace(b"()", b"")
        if not shorter:
            return False
        if len(shorter) == len(rest):
            break  # not balanced: walk it
        rest = shorter
    return _deepest(structure, limit) > limit


def value_too_deep(value: object, limit: int) -> bool:
    """True when a decoded JSON value (dicts and lists) nests more than ``limit`` levels.

    For values that never were bytes (the Python SDK's dicts); iterative, and it
    stops at the first container past the limit.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False

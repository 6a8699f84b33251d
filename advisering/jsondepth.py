"""How deeply JSON text nests, read from the bytes before any parser sees them.

Why: deep JSON is cheap to send and expensive to take apart. A parser or a
recursive walk (redaction, serialisation) on a thousand levels ends in a
RecursionError or a refused serialisation, which is how one request once
answered 500 and one record broke a worker's batch. So the depth is measured
on the raw bytes first, and nothing deeper than the limit is parsed at all.

How, cheaply: the number of ``[`` and ``{`` bounds the depth, so an ordinary
event (a handful of brackets) costs two C-speed counts and nothing more.
Only text with more brackets than the limit is looked at closely: escapes
(a backslash and the character after it) and then strings are cut out with
two linear regular expressions, every byte but the brackets is dropped with
``bytes.translate``, and a Python loop walks what is left, the brackets
only. Every step is linear in the length of the text; no regular expression
here can backtrack.

Text that is not JSON gets an answer too: an unterminated string does not
hide the brackets after it, so a truncated deep document still counts as
deep (it would be refused as not JSON anyway).
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the character it escapes
_STRING = re.compile(rb'"[^"]*"')  # a string, once the escapes are gone
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in _BRACKETS)
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"(())")
_OPEN = ord("(")


def json_depth(payload: bytes, stop: int | None = None) -> int:
    """The deepest nesting of arrays and objects in the JSON text ``payload`` (0 for a scalar).

    With ``stop``, the walk ends as soon as the depth passes it (the answer is then
    ``stop + 1``): a megabyte of brackets is not walked to its end.
    """
    bound = stop if stop is not None else len(payload)
    text = payload
    if b"\\" in text:
        text = _ESCAPE.sub(b"", text)
    if b'"' in text:
        text = _STRING.sub(b"", text)
    depth = deepest = 0
    for byte in text.translate(_OPEN_CLOSE, _NOT_BRACKETS):
        if byte == _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > bound:
                    break
        elif depth:
            depth -= 1
    return deepest


def json_too_deep(payload: bytes, limit: int) -> bool:
    """True when ``payload`` nests arrays and objects more than ``limit`` levels deep."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False  # fewer brackets than the limit: no need to look closer
    return json_depth(payload, limit) > limit

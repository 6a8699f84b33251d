r"""Finding CPR numbers in text however they are disguised (the matching behind privacy.py).

A source that wants a CPR number past the bus, or one that is merely sloppy,
writes it in many shapes: ``ddmmyy ssss``, ``dd.mm.yy-ssss``, full-width or
Arabic-Indic digits, a zero-width space between two digits, percent-encoded
inside a URL, glued to letters. So each string is first *normalised*, then
searched:

1. Decoding, repeated until nothing changes (at most :data:`MAX_ROUNDS`
   rounds, for double encoding like ``%2530``): percent-encoding (UTF-8, a
   byte that is not UTF-8 read as Latin-1), HTML character references
   (``&#48;``, ``&#x30;``, ``&nbsp;``) and JSON escapes (``\u0030``, ``\n``).
   Each character then goes through Unicode NFKC; every Unicode decimal digit
   becomes its ASCII digit; format characters, combining marks and the other
   default-ignorable code points (zero-width space and joiners, soft hyphen,
   variation selectors) are removed; Unicode spaces and dashes become a space.
2. Exempt tokens (canonical UUIDs and hex tokens of 16, 24, 32, 40 or 64
   characters: trace and span ids, ObjectIds, digests) are blanked out.
3. A *run* is a maximal sequence of digit groups joined by separators
   (whitespace, ``. / \ _ -``). Any window of consecutive whole groups with
   exactly ten digits whose first seven digits give a valid birth date is a
   CPR number. Letters, ``:``, ``+``, ``,`` and other characters end a run.
4. A string that is wholly a number in exponent form (``2.1019e9``) is also
   checked by its value, as numbers are (see :func:`number_digits`).

Each normalised character remembers the span of the original text it came
from, so a hit can be redacted in the original.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import math
import re
import unicodedata
from dataclasses import dataclass

MAX_ROUNDS = 6

# Non-ASCII characters people put between digits, beyond Unicode whitespace
# (NFKC has already mapped full-width and small forms to ASCII or to these).
_SEPARATORS = frozenset(
    "\u00b7\u02d7\u2010\u2011\u2012\u2013\u2014\u2015\u2022\u2027\u2043\u2044\u2212"
    "\u2215\u2219\u22c5\u2e31\u2e3a\u2e3b\u30fb"
)
# Default-ignorable code points that are not format characters (Cf) or marks (M*).
_IGNORABLE_RANGES = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)

# What one decoding round rewrites: percent-encoded bytes, HTML character
# references, JSON escapes and every non-ASCII character.
_TOKEN = re.compile(
    r"(?P<pct>(?:%[0-9A-Fa-f]{2})+)"
    r"|(?P<num>&#(?:[xX][0-9A-Fa-f]+|[0-9]+);?)"
    r"|(?P<ent>&[A-Za-z][A-Za-z0-9]{1,31};?)"
    r"|(?P<esc>\\(?:u[dD][89abAB][0-9A-Fa-f]{2}\\u[dD][c-fC-F][0-9A-Fa-f]{2}"
    r"|u[0-9A-Fa-f]{4}|[nrtbf/\\\"]))"
    r"|(?P<uni>[^\x00-\x7f]+)"
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "/": "/", "\\": "\\",
            '"': '"'}
_LATIN1_FALLBACK = {0xDC00 + byte: byte for byte in range(0x80, 0x100)}

_EXEMPT = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
    r"-[0-9A-Fa-f]{12}|[0-9A-Fa-f]{64}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{32}|[0-9A-Fa-f]{24}"
    r"|[0-9A-Fa-f]{16})(?![0-9A-Za-z])"
)
_SEP = r"[\s./\\_-]"
_RUN = re.compile(rf"[0-9]+(?:{_SEP}+[0-9]+)*")
_DIGITS = re.compile(r"[0-9]+")
# After normalisation: could this ASCII text hold ten digits with separators?
_TEN = re.compile(rf"[0-9](?:{_SEP}*[0-9]){{9}}")
# A window of whole digit groups with ten digits, in C: its first digit starts a
# group (no digit before it), its last ends one (no digit after it), separators
# only between; the day's first digit is 0-3 and the month 01-12. The date is
# then checked exactly. The first digit is consumed and the rest looked ahead
# at, so windows that overlap are all seen.
_S = rf"{_SEP}*"
_WINDOW = re.compile(
    rf"[0-3](?<![0-9][0-3])(?=({_S}[0-9]{_S}(?:0{_S}[1-9]|1{_S}[0-2])(?:{_S}[0-9]){{6}})"
    rf"(?![0-9]))"
)
_NOT_DIGIT = re.compile(r"[^0-9]+")
# Written without ambiguity: backtracking stays linear on a long run of digits.
_EXPONENT = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]+\s*")


@dataclass(frozen=True)
class Hit:
    """A CPR number found in a text: its ten digits and its span in the original text.

    ``digits`` is empty when the text could not be decoded within
    :data:`MAX_ROUNDS` rounds; such a text is treated as hiding a CPR number.
    """

    digits: str
    start: int
    end: int


def _birth_century(year2: int, seventh: int) -> list[int]:
    """Centuries a CPR number's seventh digit allows (the CPR office's table)."""
    if seventh <= 3:
        return [1900]
    if seventh in (4, 9):
        return [2000] if year2 <= 36 else [1900]
    return [2000] if year2 <= 57 else [1800]


def valid_date(digits6: str, seventh: int) -> bool:
    """True when the first six digits (ddmmyy) and the seventh give a real birth date."""
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


def digits_are_cpr(digits: str) -> bool:
    """True for ten ASCII digits that form a CPR number (a valid date)."""
    return len(digits) == 10 and digits.isdigit() and valid_date(digits[:6], int(digits[6]))


def number_digits(value: float) -> str | None:
    """The ten digits a JSON number stands for when it is a CPR number, else None.

    Ten-digit integers as they are; nine-digit ones zero-padded (a CPR number
    starting with 0 that lost its zero); a float by its integer part, so for
    a CPR number ``ddmmyyssss`` the floats ``ddmmyyssss.0``, ``d.dmmyysssse9``
    and ``ddmmyyssss.5`` all count. bool is no number.
    """
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    whole = abs(int(value))
    if 100_000_000 <= whole < 10_000_000_000:
        digits = f"{whole:010d}"
        return digits if digits_are_cpr(digits) else None
    return None


@functools.lru_cache(maxsize=8192)
def normalise_char(char: str) -> str:
    """One non-ASCII character after NFKC, digit folding, separator and ignorable rules."""
    out = []
    for c in unicodedata.normalize("NFKC", char):
        if c < "\x80":
            out.append(c)
            continue
        digit = unicodedata.decimal(c, None)
        if digit is not None:
            out.append(str(digit))
        elif c in _SEPARATORS or c.isspace():
            out.append(" ")
        elif not _ignorable(c):
            out.append(c)
    return "".join(out)


@functools.lru_cache(maxsize=8192)
def _normalise_run(run: str) -> list[str]:
    """A run of non-ASCII characters normalised, one piece per character; [run] if unchanged."""
    pieces = [normalise_char(c) for c in run]
    return [run] if "".join(pieces) == run else pieces


def _ignorable(char: str) -> bool:
    if unicodedata.category(char) in ("Cf", "Mn", "Me", "Mc"):
        return True
    point = ord(char)
    return any(low <= point <= high for low, high in _IGNORABLE_RANGES)


def _decode_token(match: re.Match[str]) -> list[str]:
    """The replacement of one token, as pieces that share the token's original span.

    A run of non-ASCII characters gives one piece per character, so each keeps
    its own span; anything else is one piece.
    """
    kind, token = match.lastgroup, match.group()
    if kind == "uni":
        return _normalise_run(token)
    if kind == "pct":
        raw = bytes.fromhex(token.replace("%", ""))
        return [raw.decode("utf-8", "surrogateescape").translate(_LATIN1_FALLBACK)]
    if kind == "num":
        body = token[2:].rstrip(";")
        hexa = body[:1] in ("x", "X")
        significant = (body[1:] if hexa else body).lstrip("0") or "0"
        if len(significant) > 8:
            return ["\ufffd"]
        point = int(significant, 16 if hexa else 10)
        return [html.unescape(f"&#{point};")]
    if kind == "ent":
        return [html.unescape(token)]
    if token[1] != "u":
        return [_ESCAPES[token[1]]]
    if len(token) == 12:
        high, low = int(token[2:6], 16), int(token[8:12], 16)
        return [chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))]
    point = int(token[2:6], 16)
    return [token] if 0xD800 <= point <= 0xDFFF else [chr(point)]


@dataclass(frozen=True)
class Normalised:
    """A normalised text and, per character, the span of the original it came from.

    ``starts``/``ends`` are None when the text is unchanged (identity spans).
    """

    text: str
    starts: list[int] | None
    ends: list[int] | None
    undecodable: bool = False

    def span(self, first: int, last: int) -> tuple[int, int]:
        """The original span of normalised characters ``first`` .. ``last`` (inclusive)."""
        if self.starts is None or self.ends is None:
            return first, last + 1
        return self.starts[first], self.ends[last]


def _round(text: str, starts: list[int], ends: list[int]) -> tuple[str, list[int], list[int]]:
    parts: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    position = 0
    for match in _TOKEN.finditer(text):
        begin, stop = match.span()
        if begin > position:
            parts.append(text[position:begin])
            new_starts.extend(starts[position:begin])
            new_ends.extend(ends[position:begin])
        pieces = _decode_token(match)
        if pieces == [match.group()]:  # unchanged (letters like æ, ø): spans as they are
            parts.append(pieces[0])
            new_starts.extend(starts[begin:stop])
            new_ends.extend(ends[begin:stop])
            position = stop
            continue
        single = len(pieces) == 1
        for offset, piece in enumerate(pieces):
            first = begin if single else begin + offset
            last = stop - 1 if single else begin + offset
            parts.append(piece)
            new_starts.extend([starts[first]] * len(piece))
            new_ends.extend([ends[last]] * len(piece))
        position = stop
    parts.append(text[position:])
    new_starts.extend(starts[position:])
    new_ends.extend(ends[position:])
    return "".join(parts), new_starts, new_ends


def normalise(text: str) -> Normalised:
    """``text`` decoded and normalised (see the module docstring), with original spans."""
    if text.isascii() and "%" not in text and "&" not in text and "\\" not in text:
        return Normalised(text, None, None)
    current = text
    starts, ends = list(range(len(text))), list(range(1, len(text) + 1))
    for _ in range(MAX_ROUNDS):
        decoded, starts_next, ends_next = _round(current, starts, ends)
        if decoded == current:
            return Normalised(current, starts, ends)
        current, starts, ends = decoded, starts_next, ends_next
    changed = _round(current, starts, ends)[0] != current
    return Normalised(current, starts, ends, undecodable=changed)


def _blank_exempt(text: str) -> str:
    if not any(c in text for c in "abcdefABCDEF"):
        return text
    return _EXEMPT.sub(lambda m: "x" * len(m.group()), text)


def find_hits(text: str, limit: int = 1_000_000) -> list[Hit]:
    """The CPR numbers in ``text`` under normalisation (at most ``limit``), with spans."""
    quick = text.isascii() and "%" not in text and "&" not in text and "\\" not in text
    if quick and _TEN.search(text) is None:
        if ("e" in text or "E" in text) and _EXPONENT.fullmatch(text) is not None:
            digits = number_digits(float(text))
            return [Hit(digits, 0, len(text))] if digits is not None else []
        return []
    norm = normalise(text)
    if norm.undecodable:
        return [Hit("", 0, len(text))]
    hits: list[Hit] = []
    exponent = _EXPONENT.fullmatch(norm.text)
    if exponent is not None:
        digits = number_digits(float(norm.text))
        if digits is not None:
            return [Hit(digits, 0, len(text))]
    searched = _blank_exempt(norm.text)
    for window in _WINDOW.finditer(searched):
        digits = searched[window.start()] + _NOT_DIGIT.sub("", window.group(1))
        if digits_are_cpr(digits):
            start, end = norm.span(window.start(), window.end(1) - 1)
            hits.append(Hit(digits, start, end))
            if len(hits) >= limit:
                break
    return hits


def single_cpr(text: str) -> str | None:
    """The ten digits when ``text`` is exactly one CPR number (digits and separators only)."""
    if len(text) == 10 and text.isascii() and text.isdigit():
        # The common form, ten ASCII digits: normalising it changes nothing.
        return text if digits_are_cpr(text) else None
    norm = normalise(text)
    candidate = norm.text.strip()
    if norm.undecodable or _RUN.fullmatch(candidate) is None:
        return None
    digits = "".join(_DIGITS.findall(candidate))
    return digits if digits_are_cpr(digits) else None

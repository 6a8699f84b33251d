"""Property tests: a CPR number survives no disguise; the raw-bytes pre-check never misses one."""

from __future__ import annotations

import datetime as dt
import sys
import unicodedata
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisering import cpr_text
from advisering.privacy import (
    cpr_paths,
    find_cprs,
    json_may_hold_cpr,
    may_hold_cpr,
    redact,
    redact_value,
)
from tests.unit.cpr_corpus import base_event

# The zero of each decimal-digit script mixed into the numbers (ASCII, Arabic-Indic,
# extended Arabic-Indic, Devanagari, Bengali, Thai, full-width, mathematical bold/monospace).
ZEROS = (0x30, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0xFF10, 0x1D7CE, 0x1D7F6)
SEPARATORS = (" ", "\u00a0", "\u202f", "\u3000", ".", "/", "\\", "_", "-", "\u2010", "\u2011",
              "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "\u00b7", "\u200b", "\u200c",
              "\u200d", "\u2060", "\ufeff", "\u00ad", "\t", "\n", "\ufe0f", "\u0301")
# Birth dates with a seventh digit that gives their century (the CPR office's table).
CENTURIES = ((dt.date(1900, 1, 1), dt.date(1999, 12, 31), "0123"),
             (dt.date(2000, 1, 1), dt.date(2036, 12, 31), "49"),
             (dt.date(2000, 1, 1), dt.date(2057, 12, 31), "5678"),
             (dt.date(1858, 1, 1), dt.date(1899, 12, 31), "5678"))


@st.composite
def cpr_numbers(draw: st.DrawFn) -> str:
    """The ten ASCII digits of a valid CPR number."""
    low, high, sevenths = draw(st.sampled_from(CENTURIES))
    born = draw(st.dates(min_value=low, max_value=high))
    seventh = draw(st.sampled_from(sevenths))
    return f"{born:%d%m%y}{seventh}{draw(st.integers(0, 999)):03d}"


@st.composite
def disguised(draw: st.DrawFn) -> tuple[str, str]:
    """(digits, text): a CPR number in mixed scripts with separators at random positions."""
    digits = draw(cpr_numbers())
    out = []
    for index, digit in enumerate(digits):
        if index:
            out.append("".join(draw(st.lists(st.sampled_from(SEPARATORS), max_size=2))))
        out.append(chr(draw(st.sampled_from(ZEROS)) + int(digit)))
    return digits, "".join(out)


@given(disguised(), st.sampled_from(["", "id", "cpr=", "x:", "(", "borger "]),
       st.sampled_from(["", "abc", ";", " ok", ")"]))
def test_disguised_cpr_is_found_in_a_string(case: tuple[str, str], before: str, after: str
                                            ) -> None:
    """Separators anywhere and digits of any script never hide a CPR number in text."""
    digits, text = case
    value = before + text + after
    hits = cpr_text.find_hits(value)
    assert digits in [hit.digits for hit in hits]
    assert find_cprs(redact(value)) == []


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(disguised(), st.sampled_from(["id", "subject", "data.note", "key", "data.list"]))
def test_disguised_cpr_is_found_anywhere_in_an_event(case: tuple[str, str], where: str) -> None:
    """In id, subject, an extension, a key or a list, the walk and the pre-check both see it."""
    _, text = case
    event: dict[str, Any] = base_event()
    if where == "data.note":
        event["data"]["note"] = text
    elif where == "data.list":
        event["data"]["list"] = ["ok", {"deeper": text}]
    elif where == "key":
        event["data"][text] = "ringede"
    else:
        event[where] = text
    assert list(cpr_paths(event))
    assert json_may_hold_cpr(orjson.dumps(event))
    assert json_may_hold_cpr(orjson.dumps(event, option=orjson.OPT_INDENT_2))
    assert list(cpr_paths(redact_value(event))) == []


# Text made of what disguises are made of: digits of several scripts, separators,
# hex letters, e, escapes' characters, and a few others.
_ALPHABET = st.sampled_from(
    list("0123456789") * 4 + [chr(z + d) for z in ZEROS[1:] for d in (0, 1, 2, 9)]
    + list(SEPARATORS) + list("abcdefxE+:,%&#;") + ["%3", "&#4", "\u00b2", "\u2460", "\ufb01"]
)
_TEXT = st.lists(_ALPHABET, max_size=30).map("".join)
_NUMBERS = st.one_of(st.integers(-10**11, 10**11), st.integers(100_000_000, 9_999_999_999),
                     st.floats(allow_nan=False, allow_infinity=False),
                     st.floats(min_value=1e8, max_value=1e10))
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT, disguised().map(lambda c: c[1])),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(_TEXT, children, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_pre_check_is_never_false_when_the_walk_finds_a_cpr(value: Any) -> None:
    """json_may_hold_cpr is sound: never False for bytes whose decoded value holds a CPR."""
    if list(cpr_paths(value, "$")):
        assert json_may_hold_cpr(orjson.dumps(value))
        assert json_may_hold_cpr(orjson.dumps(value, option=orjson.OPT_INDENT_2))
        assert may_hold_cpr(value)
    assert list(cpr_paths(redact_value(value))) == []


@given(_TEXT)
def test_redacted_text_never_holds_a_cpr(text: str) -> None:
    """Whatever the text, redact leaves no CPR number that find_cprs could see."""
    assert find_cprs(redact(text)) == []


def test_no_character_normalises_to_more_digits_than_its_utf8_bytes() -> None:
    """Each non-ASCII code point yields at most as many digits as its UTF-8 bytes (pre-check)."""
    normalise = cpr_text.normalise_char.__wrapped__
    worst = 0
    for point in range(0x80, sys.maxunicode + 1):
        if 0xD800 <= point <= 0xDFFF:
            continue
        char = chr(point)
        if unicodedata.category(char) == "Cn":
            continue
        digits = sum(c.isdigit() and c.isascii() for c in normalise(char))
        assert digits <= len(char.encode()), hex(point)
        worst = max(worst, digits)
    assert worst >= 2  # e.g. U+2469 CIRCLED NUMBER TEN is "10": the bound is not vacuous

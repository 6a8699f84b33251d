"""The depth of JSON read from its bytes, before any parser, and the decode's too_deep."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisering.events import Rejection, RejectReason, Vocabulary, decode_event
from advisering.jsondepth import json_too_deep, value_too_deep
from tests.unit.builders import VOCABULARY, case, event_dict


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """``depth`` levels of alternating arrays and objects around ``inner``."""
    opens = b"".join(b"[" if level % 2 else b'{"k":' for level in range(depth))
    closes = b"".join(b"]" if level % 2 else b"}" for level in reversed(range(depth)))
    return opens + inner + closes


def depth_of(value: Any) -> int:
    """The reference: the depth of a decoded JSON value."""
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    return 0


def scanned_depth(text: bytes) -> int:
    """The depth the byte scan sees: the least limit ``text`` is not too deep for."""
    return next(limit for limit in range(len(text) + 1) if not json_too_deep(text, limit))


def test_exactly_the_limit_passes_one_more_is_too_deep() -> None:
    """32 levels are allowed at the default limit; 33 are too deep."""
    assert not json_too_deep(nested(32), 32)
    assert json_too_deep(nested(33), 32)


@pytest.mark.parametrize(("text", "depth"), [
    (b'{"a": "[[[[{{{{"}', 1),
    (b'{"a": "]]]]}}}}", "b": [[1]]}', 3),
    (b'{"a": "\\"[[[[", "b": 1}', 1),
    (b'{"a": "\\\\", "b": [[[1]]]}', 4),
    (b'{"a\\"[": "\\\\\\"]]]]", "b": [1]}', 2),
    (b'["\\u005b\\u005b", [[]]]', 3),
    (b"42", 0),
    (b"", 0),
])
def test_brackets_inside_strings_and_escapes_do_not_count(text: bytes, depth: int) -> None:
    """Brackets in strings, escaped quotes and escaped backslashes leave the depth alone."""
    if text:
        assert depth_of(orjson.loads(text)) == depth
    assert scanned_depth(text) == depth


def test_many_brackets_side_by_side_are_not_deep() -> None:
    """A wide document (more brackets than the limit, little depth) is not too deep."""
    wide = orjson.dumps([{"a": [1, {"b": "]"}]} for _ in range(500)])
    assert not json_too_deep(wide, 4)
    assert json_too_deep(wide, 3)


def test_truncated_deep_text_counts_as_deep() -> None:
    """Unclosed brackets (a cut-off deep document) count: refused before any parse."""
    assert json_too_deep(b"[" * 1000, 32)
    assert json_too_deep(b'{"a": ' + b"[" * 100, 32)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.text(alphabet='[]{}"\\ab\u00e6'),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=4), children, max_size=4),
    max_leaves=60,
)


@settings(max_examples=400, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=12))
def test_depth_matches_the_decoded_value(value: Any, limit: int) -> None:
    """For any JSON value, the byte scan gives the depth of the decoded value."""
    text = orjson.dumps(value)
    assert scanned_depth(text) == depth_of(value)
    assert json_too_deep(text, limit) == (depth_of(value) > limit)


def test_decode_refuses_deep_json_before_parsing() -> None:
    """decode_event answers TOO_DEEP from 33 levels to a million, at the vocabulary's limit."""
    raw = event_dict("case.opened", case("MOM-1", "jobcenter"))
    assert not isinstance(decode_event(orjson.dumps(raw), VOCABULARY), Rejection)
    for depth in (33, 300, 1000, 1_000_000):
        result = decode_event(b'{"data": ' + nested(depth) + b"}", VOCABULARY)
        assert isinstance(result, Rejection)
        assert result.reason == RejectReason.TOO_DEEP
    shallow = Vocabulary(max_depth=2)
    result = decode_event(orjson.dumps(raw), shallow)
    assert isinstance(result, Rejection) and result.reason == RejectReason.TOO_DEEP


def test_decoded_values_are_measured_without_recursion() -> None:
    """value_too_deep: the limit passes, one more is too deep, 100,000 levels raise nothing."""
    assert not value_too_deep(orjson.loads(nested(32)), 32)
    assert value_too_deep(orjson.loads(nested(33)), 32)
    very_deep: list[Any] = []
    for _ in range(100_000):
        very_deep = [very_deep]
    assert value_too_deep(very_deep, 32)
    assert not value_too_deep({"a": 1, "b": "[[[["}, 1)


def test_the_sdk_refuses_a_deep_dict(tmp_path: Any) -> None:
    """Publisher.prepare answers TOO_DEEP for a dict nested past the limit (no RecursionError)."""
    from advisering.edge.client import Publisher  # noqa: PLC0415
    from advisering.settings import Settings  # noqa: PLC0415

    raw = event_dict("case.opened", case("MOM-1", "jobcenter"))
    note: list[Any] = []
    for _ in range(5000):
        note = [note]
    raw["data"]["note"] = note
    settings = Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key="k" * 32,
                        topics_dir=tmp_path)
    with Publisher(settings) as publisher:
        result = publisher.prepare(raw)
    assert isinstance(result, Rejection) and result.reason == RejectReason.TOO_DEEP


def test_replayed_files_refuse_deep_lines(tmp_path: Any) -> None:
    """rules test/backtest read a deep line as TOO_DEEP, an ordinary one as an event."""
    from advisering.rulebook.history import json_lines, prepared  # noqa: PLC0415

    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(event_dict("case.opened", case("MOM-1", "jobcenter")))
                     + b"\n" + nested(40) + b"\n{oops\n")
    results = [result for _, result in prepared(json_lines(path), b"k" * 32, VOCABULARY)]
    assert not isinstance(results[0], Rejection)
    assert [r.reason for r in results[1:] if isinstance(r, Rejection)] == [
        RejectReason.TOO_DEEP, RejectReason.NOT_JSON]

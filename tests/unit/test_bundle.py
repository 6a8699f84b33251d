"""Repartition bundles: several citizen events in one record, read back exactly."""

from __future__ import annotations

import orjson
import pytest

from advisering.worker.bundle import pack, unpack

A = b"ps1-" + b"a" * 52
B = b"ps1-" + b"b" * 52


def test_pairs_round_trip_in_order() -> None:
    """unpack(pack(pairs)) gives the pairs back, in order, duplicates kept."""
    pairs = [(A, b'{"id":"1"}'), (B, b'{"id":"2"}'), (A, b'{"id":"3"}')]
    assert unpack(pack(pairs)) == pairs


def test_line_breaks_in_pretty_printed_json_become_spaces() -> None:
    """A pretty-printed event is carried as the same JSON on one line."""
    payload = orjson.dumps({"id": "1", "data": {"x": "a b"}}, option=orjson.OPT_INDENT_2)
    [(citizen, carried)] = unpack(pack([(A, payload.replace(b"\n", b"\r\n"))]))
    assert citizen == A
    assert b"\n" not in carried
    assert orjson.loads(carried) == orjson.loads(payload)


@pytest.mark.parametrize("value", [
    None, b"", b'{"id":"1"}', A + b'{"id":"1"}', A + b' {"id":"1"}\nnot-a-pseudonym {"id":"2"}',
])
def test_malformed_records_raise(value: bytes | None) -> None:
    """A record not in the bundle format (a bare event too) is refused with ValueError."""
    with pytest.raises(ValueError, match="repartition record"):
        unpack(value)

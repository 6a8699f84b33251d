"""Repartition bundles: the citizen events of a batch bound for one partition, in one record.

Why: Faust's per-message consumer machinery (a fetch callback with two tasks,
a channel, an Event, an ack) costs about as much as everything else the
worker does with an event. ``intake`` routes every party's copy of an event
to the partition of its pseudonym, as before, but writes all copies bound for
one partition in one batch as a single record; ``correlate`` then pays that
per-message cost once per record instead of once per event.

Format (the repartition topic is internal to the worker): one line per
citizen event, ``<pseudonym> <event JSON>``. A pseudonym holds no space, and
JSON text holds a line break only as insignificant whitespace, which is
replaced by a space. A record whose value does not start with ``ps1-`` is a
single event keyed by its pseudonym (what earlier versions wrote).
"""

from __future__ import annotations

from collections.abc import Iterable

PREFIX = b"ps1-"


def pack(events: Iterable[tuple[bytes, bytes]]) -> bytes:
    """(pseudonym, event JSON) pairs as one record value."""
    return b"\n".join(citizen + b" " + payload.replace(b"\n", b" ").replace(b"\r", b" ")
                      for citizen, payload in events)


def unpack(key: bytes | None, value: bytes | None) -> list[tuple[bytes, bytes]]:
    """The (pseudonym, event JSON) pairs of a repartition record, in order.

    Raises ValueError for a record that is neither a bundle nor a keyed event.
    """
    if value is None:
        raise ValueError("empty repartition record")
    if not value.startswith(PREFIX):
        if not key:
            raise ValueError("a single-event repartition record needs its pseudonym as key")
        return [(key, value)]
    pairs = []
    for line in value.split(b"\n"):
        citizen, sep, payload = line.partition(b" ")
        if not sep or not citizen.startswith(PREFIX):
            raise ValueError("malformed line in a repartition record")
        pairs.append((citizen, payload))
    return pairs

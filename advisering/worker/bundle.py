"""Repartition bundles: the citizen events of a batch bound for one partition, in one record.

Why: Faust's per-message consumer machinery (a fetch callback with two tasks,
a channel, an Event, an ack) costs about as much as everything else the
worker does with an event. ``intake`` routes every party's copy of an event
to the partition of its pseudonym, but writes all copies bound for
one partition in one batch as a single record; ``correlate`` then pays that
per-message cost once per record instead of once per event.

Format (the repartition topic is internal to the worker): one line per
citizen event, ``<pseudonym> <event JSON>``. A pseudonym holds no space, and
JSON text holds a line break only as insignificant whitespace, which is
replaced by a space.
"""

from __future__ import annotations

from collections.abc import Iterable

from advisering.privacy import PSEUDONYM_PREFIX

PREFIX = PSEUDONYM_PREFIX.encode()


def pack(events: Iterable[tuple[bytes, bytes]]) -> bytes:
    """(pseudonym, event JSON) pairs as one record value."""
    return b"\n".join(citizen + b" " + payload.replace(b"\n", b" ").replace(b"\r", b" ")
                      for citizen, payload in events)


def unpack(value: bytes | None) -> list[tuple[bytes, bytes]]:
    """The (pseudonym, event JSON) pairs of a repartition record, in order.

    Raises ValueError for a record not in this format (the worker dead-letters it).
    """
    if not value:
        raise ValueError("empty repartition record")
    pairs = []
    for line in value.split(b"\n"):
        citizen, sep, payload = line.partition(b" ")
        if not sep or not citizen.startswith(PREFIX):
            raise ValueError("malformed line in a repartition record")
        pairs.append((citizen, payload))
    return pairs

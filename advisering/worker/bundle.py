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
    return b"\n".join(_line(citizen, payload) for citizen, payload in events)


def _line(citizen: bytes, payload: bytes) -> bytes:
    return citizen + b" " + payload.replace(b"\n", b" ").replace(b"\r", b" ")


#: The largest bundle: a batch's copies bound for one partition go out in as many
#: records as keep each below this, far under the producer's request size and the
#: topic's ``max.message.bytes`` (1 MiB). One bundle per partition and batch could
#: pass both (a batch of 1,000 events of 2 KB, half of them bound for one
#: partition), and Kafka would refuse it again at every replay of the batch.
MAX_BYTES = 262_144


def pack_within(events: Iterable[tuple[bytes, bytes]], limit: int = MAX_BYTES) -> list[bytes]:
    """The pairs packed in order into records of at most ``limit`` bytes each.

    A single pair longer than ``limit`` gets a record of its own.
    """
    records: list[bytes] = []
    lines: list[bytes] = []
    size = 0
    for citizen, payload in events:
        line = _line(citizen, payload)
        if lines and size + 1 + len(line) > limit:
            records.append(b"\n".join(lines))
            lines, size = [], 0
        size += len(line) + (1 if lines else 0)
        lines.append(line)
    if lines:
        records.append(b"\n".join(lines))
    return records


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

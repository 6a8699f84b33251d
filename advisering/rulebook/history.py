"""Where replayed events come from: a JSON-lines file, or the case-events topic by time.

Both are generators, so a backtest holds one event at a time (plus the
overview), however long the history. A file may hold events as source systems
send them (CPR parties, pseudonymised here with the tools' throwaway key) or
as they are on the topic; the topic holds pseudonymised events only, and one
that still carries a CPR number is counted as rejected like any invalid one.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from advisering.edge.prepare import prepare_event
from advisering.events import (
    DEFAULT_MAX_DEPTH,
    CaseEvent,
    Rejection,
    Vocabulary,
    decode_event,
    parse_json,
    validate_event,
)
from advisering.jsondepth import json_too_deep

if TYPE_CHECKING:
    from advisering.kafka.connection import KafkaConnection


def json_lines(
    path: Path, max_depth: int = DEFAULT_MAX_DEPTH
) -> Iterator[tuple[int, Any, Rejection | None]]:
    """(line number, parsed value or None, why not) for every non-blank line, streamed.

    A line nested deeper than ``max_depth`` is refused before it is parsed, as
    the worker refuses it.
    """
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            value = parse_json(line, max_depth)
            if isinstance(value, Rejection):
                yield number, None, value
            else:
                yield number, value, None


_SHARED_CASE_FIELDS = ("department", "unit", "caseworker", "kle", "status", "sensitivity")


def interned(raw: Any) -> Any:
    """``raw`` with the few-valued case fields interned, in place.

    The overview keeps these strings for every open case; parsed JSON gives
    each event its own copies, and half a million open cases of "jobcenter"
    and "afgjort" are a good part of a large replay's memory.
    """
    if isinstance(raw, dict):
        if isinstance(raw.get("source"), str):
            raw["source"] = sys.intern(raw["source"])
        data = raw.get("data")
        case = data.get("case") if isinstance(data, dict) else None
        if isinstance(case, dict):
            for name in _SHARED_CASE_FIELDS:
                if isinstance(case.get(name), str):
                    case[name] = sys.intern(case[name])
    return raw


def prepared(
    lines: Iterator[tuple[int, Any, Rejection | None]], key: bytes, vocabulary: Vocabulary
) -> Iterator[tuple[int, CaseEvent | Rejection]]:
    """Each line as the publishing edge would pass it on: an event, or why not."""
    for number, raw, error in lines:
        if error is not None:
            yield number, error
        else:
            yield number, prepare_event(interned(raw), key, vocabulary, owned=True)


def decoded(payload: bytes | None, vocabulary: Vocabulary) -> CaseEvent | Rejection:
    """A record's value as the worker's intake decodes it (with the shared fields interned)."""
    if payload is None or json_too_deep(payload, vocabulary.max_depth):
        return decode_event(payload, vocabulary)
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return decode_event(payload, vocabulary)  # the same rejection the worker gives
    return validate_event(interned(raw), vocabulary)


def file_events(
    path: Path, key: bytes, vocabulary: Vocabulary
) -> Iterator[CaseEvent | Rejection]:
    """Each line of a JSON-lines file as the worker would receive it: an event, or why not."""
    for _, result in prepared(json_lines(path, vocabulary.max_depth), key, vocabulary):
        yield result


class HistoryError(RuntimeError):
    """The topic cannot be read as asked (no such topic, broker silent)."""


def topic_events(
    kafka: KafkaConnection, topic: str, start: dt.datetime, end: dt.datetime,
    vocabulary: Vocabulary,
    *, idle_timeout: float = 30.0,
) -> Iterator[CaseEvent | Rejection]:
    """Records of ``topic`` with a timestamp in [start, end], partition by partition in order.

    ``offsets_for_times`` finds in each partition the first record at or after
    ``start`` and the first one after ``end``; a partition is read between the
    two, and never past the end offset it had when the replay began, so records published
    meanwhile do not make the replay run forever. Record timestamps are the
    producer's (CreateTime): when the source system published the event.
    """
    from confluent_kafka import KafkaException  # noqa: PLC0415

    from advisering.kafka import reading  # noqa: PLC0415 - the tools load Kafka only when used

    consumer = reading.open_consumer(kafka, "backtest")
    try:
        try:
            ends = reading.end_offsets(consumer, topic)
            first = _offsets_at(consumer, topic, ends, start)
            after = _offsets_at(consumer, topic, ends, end + dt.timedelta(milliseconds=1))
        except (reading.TopicReadError, KafkaException) as exc:
            raise HistoryError(f"cannot read {topic} at {kafka.bootstrap}: {exc}") from exc
        try:
            for record in reading.read_range(consumer, topic, first, after, timeout=None,
                                             idle_timeout=idle_timeout):
                yield decoded(record.value, vocabulary)
        except reading.ReadIncomplete as exc:
            raise HistoryError(str(exc)) from exc
    finally:
        consumer.close()


def _offsets_at(consumer: Any, topic: str, ends: dict[int, int],
                at: dt.datetime) -> dict[int, int]:
    """Per partition, the first offset with a timestamp at or after ``at``; its end if none."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    at_ms = int(at.timestamp() * 1000)
    found = consumer.offsets_for_times([TopicPartition(topic, p, at_ms) for p in ends],
                                       timeout=10)
    return {tp.partition: tp.offset if 0 <= tp.offset < ends[tp.partition]
            else ends[tp.partition] for tp in found}

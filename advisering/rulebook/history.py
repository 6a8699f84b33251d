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
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from advisering.kafka.clients import client_config


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
    bootstrap: str, topic: str, start: dt.datetime, end: dt.datetime, vocabulary: Vocabulary,
    *, idle_timeout: float = 30.0,
) -> Iterator[CaseEvent | Rejection]:
    """Records of ``topic`` with a timestamp in [start, end], partition by partition in order.

    Seeks each partition with ``offsets_for_times`` to the first record at or
    after ``start``; a partition is done at the first record after ``end`` or
    at the end offset it had when the replay began, so records published
    meanwhile do not make the replay run forever. Record timestamps are the
    producer's (CreateTime): when the source system published the event.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition  # noqa: PLC0415

    consumer = Consumer(client_config(bootstrap, {
        "group.id": f"advisering-backtest-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }))
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise HistoryError(f"cannot read {topic} at {bootstrap}: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise HistoryError(f"topic {topic} not found at {bootstrap}")
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in found.partitions}
        seek = consumer.offsets_for_times(
            [TopicPartition(topic, p, start_ms) for p in sorted(ends)], timeout=10)
        todo = {tp.partition for tp in seek if 0 <= tp.offset < ends[tp.partition]}
        if not todo:
            return
        consumer.assign([tp for tp in seek if tp.partition in todo])
        idle_since = time.monotonic()
        while todo:
            messages = consumer.consume(num_messages=1000, timeout=0.5)
            if not messages and time.monotonic() - idle_since > idle_timeout:
                raise HistoryError(f"no records from {topic} for {idle_timeout:.0f}s; "
                                   f"partitions {sorted(todo)} not read to their end")
            for message in messages:
                idle_since = time.monotonic()
                partition = int(message.partition() or 0)
                if message.error() is not None or partition not in todo:
                    continue
                offset = int(message.offset() or 0)
                if message.timestamp()[1] > end_ms:
                    _done(consumer, topic, partition, todo)
                    continue
                yield decoded(message.value(), vocabulary)
                if offset + 1 >= ends[partition]:
                    _done(consumer, topic, partition, todo)
    finally:
        consumer.close()


def _done(consumer: Any, topic: str, partition: int, todo: set[int]) -> None:
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    todo.discard(partition)
    consumer.pause([TopicPartition(topic, partition)])

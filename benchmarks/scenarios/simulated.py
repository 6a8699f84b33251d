"""The ingest benchmark's events: a simulated municipality, as requests and as records."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from advisering.dev.simulator import CET, Municipality, simulate
from advisering.edge.prepare import prepare_event
from advisering.events import Rejection, Vocabulary, encode_event

SIM_START = dt.datetime(2026, 10, 1, tzinfo=CET)
SIM_DAYS = 30
EVENTS_PER_CITIZEN = 0.7  # what the simulator yields in 30 days, roughly


def simulated_events(n: int, citizens: int, seed: int) -> tuple[list[dict[str, Any]], int]:
    """The first ``n`` events of a simulated municipality; cycled with fresh ids if fewer."""
    municipality = Municipality(seed=seed, citizens=citizens, days=SIM_DAYS, start=SIM_START)
    events = list(itertools.islice(simulate(municipality), n))
    simulated = len(events)
    if not events:
        raise RuntimeError(f"the simulator gave no event for {citizens} citizens")
    index = 0
    while len(events) < n:
        again = copy.deepcopy(events[index % simulated])
        again["id"] = str(uuid.uuid4())
        events.append(again)
        index += 1
    return events, simulated


@dataclass(frozen=True)
class Request:
    source: str
    body: bytes
    events: int


def single_requests(events: list[dict[str, Any]]) -> list[Request]:
    return [Request(e["source"], orjson.dumps(e), 1) for e in events]


def batched_requests(events: list[dict[str, Any]], size: int) -> list[Request]:
    """JSON arrays of ``size`` events of one source each (an API key is per source)."""
    pending: dict[str, list[dict[str, Any]]] = {}
    requests: list[Request] = []
    for event in events:
        batch = pending.setdefault(event["source"], [])
        batch.append(event)
        if len(batch) == size:
            requests.append(Request(event["source"], orjson.dumps(batch), size))
            pending[event["source"]] = []
    requests.extend(Request(source, orjson.dumps(batch), len(batch))
                    for source, batch in pending.items() if batch)
    return requests


def warmup_events(events: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` copies of the first events under fresh ids (not measured)."""
    out = []
    for event in itertools.islice(itertools.cycle(events), count):
        again = copy.deepcopy(event)
        again["id"] = str(uuid.uuid4())
        out.append(again)
    return out


def prepared_records(events: list[dict[str, Any]], key: bytes,
                     vocabulary: Vocabulary) -> list[tuple[bytes, bytes]]:
    """(Kafka key, encoded value) as the ingest would produce them."""
    records = []
    for raw in events:
        prepared = prepare_event(raw, key, vocabulary)
        if isinstance(prepared, Rejection):
            raise RuntimeError(f"a simulated event was rejected at the edge: {prepared}")
        records.append((prepared.key.encode(), encode_event(prepared)))
    return records

"""The chaos workload: a simulated municipality cut into requests, and its oracle.

Why the notification set cannot depend on interleaving: every simulated
event has one party (its citizen), the ingest keys it by that party's
pseudonym, and each citizen belongs to exactly one client, which posts its
requests one after another and re-sends a request until it is acknowledged.
So each citizen's events reach Kafka (and the worker's overview) in the order
the client posted them, whatever the other clients, the partitions and the
faults do; a re-sent event is a duplicate the overview ignores. The oracle
therefore replays the requests client by client through the same engine
(:func:`advisering.engine.evaluate.process`) with the same pseudonym key and
state limits, and collects the notification ids it gives (the ids are
deterministic) and the events the state limits refuse (dead letters).

Planted dead letters: a few citizens open more cases than
``ADVISERING_CITIZEN_MAX_OPEN_CASES`` (posted through the ingest, which has no
state, and refused by the worker), and a few events of a source nobody
registered are written straight to Kafka, as a foreign tool might.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from advisering.dev.simulator import Municipality, default_start, simulate, synthetic_cpr
from advisering.edge.prepare import prepare_event
from advisering.engine.evaluate import process
from advisering.engine.overview import CitizenState
from advisering.events import CaseEvent
from advisering.settings import Settings
from advisering.testing import load_matcher_and_vocabulary
from advisering.worker.steps import state_limits

PLANT_NAMESPACE = uuid.UUID("c4a05e3d-6a55-4c1e-9d3f-3f0f7b8a9e41")
PLANTED_CITIZEN_BASE = 900_000  # far above any simulated citizen number
WINDOW = 20  # a client's next events, grouped by source into requests
MAX_OPEN_CASES = 10  # the workers' and the oracle's ADVISERING_CITIZEN_MAX_OPEN_CASES


@dataclass(frozen=True)
class Request:
    """One POST: events of one source, in the order the client sends them."""

    source: str
    events: tuple[dict[str, Any], ...]

    @property
    def ids(self) -> list[str]:
        """The event ids of the request."""
        return [event["id"] for event in self.events]


@dataclass(frozen=True)
class Workload:
    """Every client's requests in order, the raw planted records, and the run's shape."""

    clients: tuple[tuple[Request, ...], ...]
    direct: tuple[dict[str, Any], ...]  # written straight to Kafka, bypassing the ingest

    @property
    def events(self) -> int:
        """Events posted through the ingest (each counted once)."""
        return sum(len(r.events) for client in self.clients for r in client)


@dataclass
class Oracle:
    """What a fault-free run gives: notification ids (with their rule) and refused events."""

    notifications: dict[str, str] = field(default_factory=dict)  # id -> rule
    dead_letters: set[str] = field(default_factory=set)  # event ids
    # id -> (the event id that caused it, its citizen's pseudonym): evidence for a miss
    causes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def per_rule(self) -> dict[str, int]:
        """Notifications per rule, as `rules backtest` reports them."""
        counts: dict[str, int] = {}
        for rule in self.notifications.values():
            counts[rule] = counts.get(rule, 0) + 1
        return dict(sorted(counts.items()))


def planted_over_limit(citizen: int, start: dt.datetime) -> list[dict[str, Any]]:
    """One more case.opened than the state limit allows: the last one is refused."""
    cpr, _ = synthetic_cpr(PLANTED_CITIZEN_BASE + citizen)
    events = []
    for index in range(MAX_OPEN_CASES + 1):
        case_id = f"PLANT-{citizen}-{index}"
        events.append({
            "specversion": "1.0",
            "id": str(uuid.uuid5(PLANT_NAMESPACE, f"limit-{citizen}-{index}")),
            "source": "momentum", "type": "case.opened", "subject": case_id,
            "time": (start + dt.timedelta(minutes=index)).isoformat(),
            "datacontenttype": "application/json",
            "data": {"parties": [{"cpr": cpr, "role": "primaer"}],
                     "case": {"id": case_id, "kle": "32.24.06", "status": "opstaaet",
                              "department": "jobcenter", "unit": "jobcenter-nord",
                              "sensitivity": "fortrolige", "caseworker": "jc-0001"}},
        })
    return events


def planted_direct(count: int, start: dt.datetime) -> list[dict[str, Any]]:
    """Events of a source no sources file knows, as a foreign tool might write them."""
    return [{
        "specversion": "1.0", "id": str(uuid.uuid5(PLANT_NAMESPACE, f"direct-{n}")),
        "source": "ukendt-kilde", "type": "citizen.moved", "time": start.isoformat(),
        "datacontenttype": "application/json",
        "data": {"parties": [{"citizen": "a" * 52, "role": "primaer"}]},
    } for n in range(count)]


def requests(events: list[dict[str, Any]]) -> Iterator[Request]:
    """A client's events in windows of WINDOW, each window grouped by source (first seen first)."""
    for begin in range(0, len(events), WINDOW):
        by_source: dict[str, list[dict[str, Any]]] = {}
        for event in events[begin:begin + WINDOW]:
            by_source.setdefault(event["source"], []).append(event)
        for source, grouped in by_source.items():
            yield Request(source, tuple(grouped))


def client_of(event: dict[str, Any], clients: int) -> int:
    """The one client that posts this event's citizen (a stable hash of its CPR number)."""
    return zlib.crc32(event["data"]["parties"][0]["cpr"].encode()) % clients


def build(citizens: int, clients: int, *, seed: int = 2026, days: int = 10,
          over_limit: int = 2, direct: int = 3) -> Workload:
    """The workload: ``citizens`` simulated over ``days`` (within the overview's 14-day memory)."""
    start = default_start(days)
    streams: list[list[dict[str, Any]]] = [[] for _ in range(clients)]
    for event in simulate(Municipality(seed=seed, citizens=citizens, days=days, start=start)):
        streams[client_of(event, clients)].append(event)
    for planted in range(over_limit):  # spread the planted citizens over the run
        events = planted_over_limit(planted, start + dt.timedelta(days=1))
        stream = streams[client_of(events[0], clients)]
        at = len(stream) * (planted + 1) // (over_limit + 1)
        stream[at:at] = events
    return Workload(tuple(tuple(requests(stream)) for stream in streams),
                    tuple(planted_direct(direct, start)))


def oracle(workload: Workload, settings: Settings) -> Oracle:
    """Replay the workload as a fault-free bus would process it, client by client."""
    matcher, vocabulary = load_matcher_and_vocabulary(settings)
    key = settings.pseudonym_key_bytes()
    limits = state_limits(settings)
    states: dict[str, CitizenState] = {}
    found = Oracle()
    for client in workload.clients:
        for request in client:
            for raw in request.events:
                event = prepare_event(raw, key, vocabulary)
                assert isinstance(event, CaseEvent), f"the workload holds an invalid event: {event}"
                for citizen in dict.fromkeys(party.citizen for party in event.data.parties):
                    outcome = process(states.get(citizen), event, citizen, matcher,
                                      event.time.isoformat(), limits)
                    states[citizen] = outcome.state
                    if outcome.limit is not None:
                        found.dead_letters.add(event.id)
                    for notification in outcome.notifications:
                        found.notifications[notification.id] = notification.rule
                        found.causes[notification.id] = (str(event.id), citizen)
    found.dead_letters.update(event["id"] for event in workload.direct)
    return found

"""The pipeline benchmark's synthetic municipality: citizens, their cases, what happens.

Raw source-system events (CPR parties) built by ``advisering.dev.scenario`` and
prepared at the edge as the ingest would, so the preloaded stream is what the
worker meets in production: mostly events no rule cares about.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.compat import imported

from advisering.events import Rejection, Vocabulary, encode_event
from advisering.grants import Grants

prepare_event = imported("prepare_event", "advisering.edge.prepare", "advisering.edge")
scenario_event = imported("event", "advisering.dev.scenario", "advisering.scenario")
synthetic_cpr = imported("synthetic_cpr", "advisering.dev.scenario", "advisering.scenario")

TZ = dt.timezone(dt.timedelta(hours=1))
STREAM_START = dt.datetime(2026, 11, 2, 8, 0, tzinfo=TZ)
STEP = dt.timedelta(seconds=30)  # event-time spacing: 20,000 events span a week

@dataclass(frozen=True)
class Department:
    name: str
    source: str
    prefix: str
    kles: tuple[str, ...]
    units: tuple[str, ...]
    caseworker: str | None  # caseworker id prefix; None: the unit gets the notification
    weight: int


DEPARTMENTS = (
    Department("jobcenter", "momentum", "MOM", ("32.24.06", "15.20.00"),
               ("jobcenter-nord", "jobcenter-syd"), "jc", 30),
    Department("ydelse", "kmd-ydelse", "KY", ("32.24.02", "32.18.00"), ("ydelse-central",),
               "yd", 20),
    Department("boern-familie", "dubu", "DUBU", ("34.15.00", "34.03.00"), ("bf-syd", "bf-nord"),
               "bf", 15),
    Department("aeldre", "nexus", "CARE", ("27.36.04", "27.36.00"),
               ("hjemmepleje-vest", "hjemmepleje-oest"), "hp", 15),
    Department("handicap-psykiatri", "sensum", "SP", ("27.12.00",), ("socialpsykiatri",),
               "sp", 8),
    Department("sundhed", "sundhed", "SUND", ("29.30.00",), ("genoptraening",), "su", 7),
    Department("skole", "elevsag", "SKOLE", ("17.07.00",), ("pps",), None, 5),
)
BY_NAME = {d.name: d for d in DEPARTMENTS}
# What each source may publish (the sources file the worker checks every event against).
GRANTS = {
    **{d.source: Grants(types=("case.*", "document.*", "benefit.*", "appointment.*"),
                        departments=(d.name,)) for d in DEPARTMENTS},
    "cpr": Grants(types=("citizen.moved", "citizen.deceased")),
    "sundhedsplatformen": Grants(types=("citizen.admitted", "citizen.discharged")),
}
# What happens after the cases are open: mostly events no rule cares about.
TRIGGERS = (
    ("document.added", 28), ("case.status-changed", 20), ("benefit.changed", 20),
    ("appointment.missed", 10), ("citizen.admitted", 7), ("citizen.discharged", 5),
    ("citizen.moved", 5), ("case.closed", 4), ("citizen.deceased", 1),
)
BENEFIT_ACTIONS = (("sanctioned", 25), ("stopped", 15), ("granted", 35), ("reduced", 25))
NEXT_STATUS = {"opstaaet": "oplyst", "oplyst": "afgjort", "afgjort": "afgjort"}


@dataclass
class Citizen:
    number: int
    cpr: str
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # open cases by department
    # Another citizen who is a party (the child) to this one's children's case, if it has one.
    child: Citizen | None = None


@dataclass
class Prepared:
    key: bytes
    value: bytes
    event_id: str
    citizens: tuple[str, ...]


@dataclass
class Stream:
    events: list[Prepared]
    citizens: list[Citizen]
    pseudonyms: dict[int, str]
    counts: Counter[str]
    end: dt.datetime


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    names, weights = zip(*weighted, strict=True)
    return rng.choices(names, weights=weights)[0]


class Generator:
    """Builds raw source-system events (CPR parties) and prepares them at the edge."""

    def __init__(self, rng: random.Random, key: bytes, vocabulary: Vocabulary) -> None:
        self.rng = rng
        self.key = key
        self.vocabulary = vocabulary
        self.seq = 0
        self.case_seq = 0
        self.run = uuid.uuid4().hex[:6].upper()
        self.pseudonyms: dict[int, str] = {}

    def new_case(self, department: Department) -> dict[str, Any]:
        self.case_seq += 1
        rng = self.rng
        case: dict[str, Any] = {
            "id": f"{department.prefix}-{self.run}-{self.case_seq:07d}",
            "kle": rng.choice(department.kles),
            "status": rng.choice(("opstaaet", "oplyst", "afgjort")),
            "department": department.name,
            "unit": rng.choice(department.units),
            "sensitivity": "fortrolige",
        }
        if department.caseworker:
            case["caseworker"] = f"{department.caseworker}-{rng.randrange(1, 400):04d}"
        if department.name == "handicap-psykiatri" and rng.random() < 0.5:
            case["sensitivity"] = "foelsomme"
        elif department.name in ("skole", "sundhed") and rng.random() < 0.3:
            case["sensitivity"] = "ikke-fortrolige"
        return case

    def prepare(self, citizen: Citizen, source: str, event_type: str, when: dt.datetime,
                case: dict[str, Any] | None = None, **extra: Any) -> Prepared:
        self.seq += 1
        raw = scenario_event(self.seq, source, event_type, when, citizen.cpr,
                             dict(case) if case else None, **extra)
        raw["id"] = str(uuid.uuid4())  # unique across runs: latency is matched on it
        if case and case["department"] == "boern-familie" and citizen.child is not None:
            raw["data"]["parties"].append({"cpr": citizen.child.cpr, "role": "barn"})
        prepared = prepare_event(raw, self.key, self.vocabulary)
        if isinstance(prepared, Rejection):
            raise RuntimeError(f"synthetic event rejected: {prepared}")
        pseudonym = prepared.data.parties[0].citizen
        self.pseudonyms[citizen.number] = pseudonym
        return Prepared(prepared.key.encode(), encode_event(prepared), prepared.id,
                        tuple(p.citizen for p in prepared.data.parties))

    def trigger(self, citizen: Citizen, kind: str, when: dt.datetime) -> tuple[str, Prepared]:
        """One event of ``kind`` (or a fallback that fits the citizen's cases)."""
        rng = self.rng
        cases = citizen.cases
        if kind == "benefit.changed":
            departments = [d for d in ("jobcenter", "ydelse") if d in cases]
            if departments:
                case = cases[rng.choice(departments)]
                action = _pick(rng, BENEFIT_ACTIONS)
                return kind, self.prepare(citizen, BY_NAME[case["department"]].source, kind,
                                          when, case, benefit={"action": action})
            kind = "document.added"
        if kind == "appointment.missed":
            if "jobcenter" in cases:
                return kind, self.prepare(citizen, "momentum", kind, when, cases["jobcenter"],
                                          appointment={"kind": "samtale"})
            kind = "document.added"
        if kind in ("document.added", "case.status-changed", "case.closed"):
            if not cases:
                kind = "citizen.moved"
            else:
                department = rng.choice(sorted(cases))
                case = dict(cases[department])
                source = BY_NAME[department].source
                if kind == "case.status-changed":
                    case["previous_status"] = case["status"]
                    case["status"] = NEXT_STATUS[case["status"]]
                    cases[department] = {k: v for k, v in case.items() if k != "previous_status"}
                elif kind == "case.closed":
                    case["previous_status"] = case["status"]
                    case["status"] = "afsluttet"
                    del cases[department]
                return kind, self.prepare(citizen, source, kind, when, case)
        source = {"citizen.admitted": "sundhedsplatformen",
                  "citizen.discharged": "sundhedsplatformen"}.get(kind, "cpr")
        return kind, self.prepare(citizen, source, kind, when)


def build_stream(n_events: int, n_citizens: int, key: bytes, vocabulary: Vocabulary,
                 seed: int) -> Stream:
    """Cases opened for every citizen (1-3 departments each), then happenings.

    A children's case has two parties (the parent, then the child), so its
    events reach two overviews: the child's copy mostly through the worker's
    repartition topic.
    """
    rng = random.Random(seed)
    gen = Generator(rng, key, vocabulary)
    offset = rng.randrange(0, 5000)  # other CPR numbers (and pseudonyms) each run
    citizens = [Citizen(n, synthetic_cpr(offset + n)) for n in range(n_citizens)]
    openings: list[tuple[Citizen, dict[str, Any]]] = []
    names = [d.name for d in DEPARTMENTS]
    weights = [d.weight for d in DEPARTMENTS]
    for citizen in citizens:
        wanted = rng.choices((1, 2, 3), weights=(45, 35, 20))[0]
        chosen: list[str] = []
        while len(chosen) < wanted:
            name = rng.choices(names, weights=weights)[0]
            if name not in chosen:
                chosen.append(name)
        for name in chosen:
            case = gen.new_case(BY_NAME[name])
            citizen.cases[name] = case
            openings.append((citizen, case))
        if "boern-familie" in chosen:  # a children's case has the child as a second party
            citizen.child = citizens[(citizen.number + n_citizens // 2) % n_citizens]
    rng.shuffle(openings)
    events: list[Prepared] = []
    counts: Counter[str] = Counter()
    when = STREAM_START
    for citizen, case in openings[:n_events]:
        events.append(gen.prepare(citizen, BY_NAME[case["department"]].source, "case.opened",
                                  when, case))
        counts["case.opened"] += 1
        when += STEP
    trigger_kinds = tuple(TRIGGERS)
    while len(events) < n_events:
        citizen = rng.choice(citizens)
        kind, prepared = gen.trigger(citizen, _pick(rng, trigger_kinds), when)
        events.append(prepared)
        counts[kind] += 1
        when += STEP
    return Stream(events, citizens, gen.pseudonyms, counts, when)


def latency_triggers(stream: Stream, count: int, key: bytes, vocabulary: Vocabulary,
                     seed: int) -> list[Prepared]:
    """Events that each fire at least one rule: distinct citizens, time far past the stream."""
    rng = random.Random(seed + 1)
    gen = Generator(rng, key, vocabulary)
    when = stream.end + dt.timedelta(days=60)
    candidates = [c for c in stream.citizens if c.cases]
    rng.shuffle(candidates)
    triggers: list[Prepared] = []
    for citizen in candidates[:count]:
        cases = citizen.cases
        aeldre = cases.get("aeldre")
        if aeldre is not None and aeldre["kle"].startswith("27.36"):
            triggers.append(gen.prepare(citizen, "sundhedsplatformen", "citizen.admitted", when))
        elif "jobcenter" in cases and "boern-familie" in cases:
            triggers.append(gen.prepare(citizen, "momentum", "benefit.changed", when,
                                        cases["jobcenter"], benefit={"action": "sanctioned"}))
        else:
            triggers.append(gen.prepare(citizen, "cpr", "citizen.moved", when))
        when += dt.timedelta(minutes=1)
    return triggers


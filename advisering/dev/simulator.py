"""A deterministic synthetic municipality: citizens, cases and what happens to them.

Each citizen's life in the simulated period is derived from ``(seed, citizen
number)`` alone, so the stream is the same for the same seed and no citizen
needs to be kept in memory: events are written to one bucket file per day and
each day is then emitted in time order. A million citizens need disk for
their events, not memory.

The CPR numbers are synthetic but valid in form (a real birth date, a serial
that fits the century digit), unique per citizen number, and are
pseudonymised at the edge like any other.
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from advisering.grants import Grants

DAY_SPAN = 36_500  # birth dates spread over a hundred years
SIM_NAMESPACE = uuid.UUID("0e7a6c63-3f7b-4a57-8d0e-5b9c2f4a1d20")
CET = dt.timezone(dt.timedelta(hours=1))

# department: (source system, KLE codes, units, caseworkers per unit)
DEPARTMENTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], int]] = {
    "jobcenter": ("momentum", ("32.24.06", "15.20.00", "15.02.05"),
                  ("jobcenter-nord", "jobcenter-syd", "jobcenter-vest"), 60),
    "ydelse": ("kmd-ydelse", ("32.24.02", "32.18.00", "32.12.04"),
               ("ydelse-central", "ydelse-pension"), 40),
    "boern-familie": ("dubu", ("34.15.00", "34.12.00", "34.20.00"),
                      ("bf-nord", "bf-syd", "bf-oest"), 30),
    "aeldre": ("nexus", ("27.36.04", "27.36.08", "27.48.00"),
               ("hjemmepleje-vest", "hjemmepleje-oest", "plejecenter-syd"), 50),
    "handicap-psykiatri": ("sensum", ("27.12.00", "27.24.00", "27.20.04"),
                           ("socialpsykiatri", "handicap-voksne"), 25),
    "sundhed": ("nexus-sundhed", ("29.30.00", "29.03.00"), ("genoptraening", "sundhedspleje"), 20),
    "skole": ("elevsag", ("17.07.00", "17.11.00"), ("pps", "skole-ungdom"), 15),
    "borgerservice": ("kmd-borgerservice", ("23.05.00",), ("borgerservice",), 10),
}
# Registry source systems and the citizen.* events each publishes (no case, so no department).
REGISTRIES: dict[str, tuple[str, ...]] = {
    "cpr": ("citizen.moved", "citizen.deceased"),
    "sundhedsplatformen": ("citizen.admitted", "citizen.discharged"),
}
# Event types a department's system publishes beyond its cases' lifecycle (case.*).
EXTRA_TYPES: dict[str, tuple[str, ...]] = {
    "momentum": ("benefit.changed", "appointment.missed"),
    "kmd-ydelse": ("benefit.changed",),
}
INITIALS = {"jobcenter": "jc", "ydelse": "yd", "boern-familie": "bf", "aeldre": "hp",
            "handicap-psykiatri": "sp", "sundhed": "su", "skole": "sk", "borgerservice": "bs"}


def source_grants() -> dict[str, Grants]:
    """What each simulated source system may publish (the demo's and the tests' sources file).

    A case system its own department's cases; a registry its citizen.* events.
    """
    # Every case system files documents on its own cases (document.added).
    grants = {source: Grants(types=("case.*", "document.added", *EXTRA_TYPES.get(source, ())),
                             departments=(department,))
              for department, (source, *_) in DEPARTMENTS.items()}
    grants.update({source: Grants(types=types) for source, types in REGISTRIES.items()})
    return grants


@dataclass(frozen=True)
class Municipality:
    """The simulated municipality: the seed makes every citizen's story reproducible."""

    seed: int
    citizens: int
    days: int
    start: dt.datetime

    def citizen(self, number: int) -> Citizen:
        """Citizen ``number``, whose story depends only on the seed and the number."""
        return Citizen(self, number)


def synthetic_cpr(number: int) -> tuple[str, dt.date]:
    """A unique, valid-in-form CPR number and birth date for citizen ``number``."""
    # 7919 is coprime with DAY_SPAN: citizen numbers spread over all birth dates
    # (any prefix of the population has every age) and never collide.
    born = dt.date(1926, 1, 1) + dt.timedelta(days=(number % DAY_SPAN) * 7919 % DAY_SPAN)
    serial = number // DAY_SPAN
    if born.year < 2000:
        if serial >= 4000:
            raise ValueError("at most 146 million citizens born before 2000")
    else:
        if serial >= 1000:
            raise ValueError("at most 36.5 million citizens born after 2000")
        serial += 4000
    return f"{born:%d%m%y}{serial:04d}", born


class Citizen:
    """One citizen's engagements and happenings, derived from the seed."""

    def __init__(self, municipality: Municipality, number: int) -> None:
        self.m = municipality
        self.number = number
        # Not for secrets: a reproducible stream per (seed, citizen) is the point.
        self.rng = random.Random(municipality.seed * 1_000_003 + number)  # noqa: S311
        self.cpr, self.born = synthetic_cpr(number)
        self.age = (municipality.start.date() - self.born).days // 365
        self.events: list[dict[str, Any]] = []
        self._seq = 0

    def _time(self, day: float) -> dt.datetime:
        hour = self.rng.uniform(7.5, 16.5)
        return self.m.start + dt.timedelta(days=int(day), hours=hour)

    def _event(self, source: str, event_type: str, day: float,
               case: dict[str, Any] | None = None, **data: Any) -> None:
        if day < 0 or day >= self.m.days:
            return
        self._seq += 1
        body: dict[str, Any] = {"parties": [{"cpr": self.cpr, "role": "primaer"}], **data}
        if case is not None:
            body["case"] = dict(case)
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(uuid.uuid5(SIM_NAMESPACE, f"{self.m.seed}-{self.number}-{self._seq}")),
            "source": source, "type": event_type, "time": self._time(day).isoformat(),
            "datacontenttype": "application/json", "data": body,
        }
        if case is not None:
            event["subject"] = case["id"]
        self.events.append(event)

    def departments(self) -> list[str]:
        """Which departments serve this citizen (overlapping, as in real life)."""
        r, age = self.rng.random, self.age
        chosen = []
        working = 18 <= age < 67
        if working and r() < 0.10:
            chosen.append("jobcenter")
        if age >= 18 and r() < (0.30 if "jobcenter" in chosen else 0.06):
            chosen.append("ydelse")
        if 20 <= age < 55 and r() < (0.20 if "jobcenter" in chosen else 0.025):
            chosen.append("boern-familie")
        if age >= 67 and r() < 0.25:
            chosen.append("aeldre")
        if age >= 18 and r() < (0.20 if "jobcenter" in chosen else 0.025):
            chosen.append("handicap-psykiatri")
        if r() < (0.12 if age >= 60 else 0.03):
            chosen.append("sundhed")
        if age < 18 and r() < 0.05:
            chosen.append("skole")
        if r() < 0.01:
            chosen.append("borgerservice")
        return chosen

    def _case(self, department: str, index: int) -> dict[str, Any]:
        source, kles, units, per_unit = DEPARTMENTS[department]
        unit = self.rng.choice(units)
        caseworker = None
        if self.rng.random() > 0.05:  # a few cases wait for a caseworker
            caseworker = f"{INITIALS[department]}-{self.rng.randrange(per_unit * len(units)):04d}"
        sensitivity = "foelsomme" if department == "handicap-psykiatri" and \
            self.rng.random() < 0.5 else "fortrolige"
        case: dict[str, Any] = {
            "id": f"{source.upper()}-{self.m.seed}-{self.number}-{index}",
            "kle": self.rng.choice(kles), "status": "opstaaet", "department": department,
            "unit": unit, "sensitivity": sensitivity,
        }
        if caseworker:
            case["caseworker"] = caseworker
        return case

    def simulate(self) -> list[dict[str, Any]]:
        """Every event of this citizen in the period (not yet in global time order)."""
        days, r, u = self.m.days, self.rng.random, self.rng.uniform
        open_cases: dict[str, tuple[dict[str, Any], float, float]] = {}
        for index, department in enumerate(self.departments()):
            case = self._case(department, index)
            source = DEPARTMENTS[department][0]
            opened = u(-days, days * 0.9) if r() < 0.7 else u(0, days)
            closes = opened + u(20, 400)
            self._lifecycle(source, case, opened, closes)
            open_cases[department] = (case, opened, closes)
        dead_at = u(0, days) if self.age >= 75 and r() < 0.004 * days / 30 else None
        horizon = dead_at if dead_at is not None else float(days)
        if "jobcenter" in open_cases:
            case, opened, closes = open_cases["jobcenter"]
            live = dict(case, status="afgjort")
            for _ in range(self._count(0.20 * days / 30)):
                self._event("momentum", "appointment.missed", self._within(opened, closes, horizon),
                            live, appointment={"kind": "samtale"})
            if r() < 0.08 * days / 30:
                action = self.rng.choice(["sanctioned", "sanctioned", "stopped", "reduced"])
                self._event("momentum", "benefit.changed", self._within(opened, closes, horizon),
                            live, benefit={"action": action})
        if "ydelse" in open_cases and r() < 0.05 * days / 30:
            case, opened, closes = open_cases["ydelse"]
            self._event("kmd-ydelse", "benefit.changed", self._within(opened, closes, horizon),
                        dict(case, status="afgjort"), benefit={"action": "stopped"})
        if r() < (0.06 if self.age >= 67 else 0.01) * days / 30:
            admitted = u(0, horizon)
            self._event("sundhedsplatformen", "citizen.admitted", admitted,
                        hospital={"department": "medicinsk"})
            self._event("sundhedsplatformen", "citizen.discharged",
                        min(admitted + u(1, 12), horizon), hospital={"department": "medicinsk"})
        if open_cases and r() < 0.01 * days / 30:
            self._event("cpr", "citizen.moved", u(0, horizon), move={"within_municipality":
                                                                       r() < 0.7})
        if dead_at is not None:
            self._event("cpr", "citizen.deceased", dead_at)
        return self.events

    def _lifecycle(self, source: str, case: dict[str, Any], opened: float, closes: float) -> None:
        """case.opened, status changes through the SDI lifecycle, maybe a reassignment.

        A case opened before the period appears on its first day as opened
        with the status it has by then, as a source system's initial load would.
        """
        steps: list[tuple[float, str, str | None]] = [(opened, "opstaaet", None)]
        at = opened
        for status, gap in (("oplyst", (2, 20)), ("afgjort", (5, 40))):
            at += self.rng.uniform(*gap)
            steps.append((min(at, closes - 1), status, steps[-1][1]))
        if closes < 0:
            return
        before = [step for step in steps if step[0] < 0]
        if before:
            _, status, previous = before[-1]
            self._event(source, "case.opened", self.rng.uniform(0, 0.3),
                        dict(case, status=status, **({"previous_status": previous}
                                                     if previous else {})))
        else:
            self._event(source, "case.opened", opened, case)
        for day, status, previous in steps[1:]:
            if day >= 0:
                self._event(source, "case.status-changed", day,
                            dict(case, status=status, previous_status=previous))
        if self.rng.random() < 0.05 and "caseworker" in case:
            reassigned = dict(case, status="afgjort", caseworker=f"{case['caseworker']}-b")
            self._event(source, "case.reassigned", self.rng.uniform(max(at, 0.5), closes),
                        reassigned)
        self._event(source, "case.closed", closes,
                    dict(case, status="afsluttet", previous_status="afgjort"))

    def _within(self, opened: float, closes: float, horizon: float) -> float:
        low, high = max(opened + 1, 1.0), min(closes, horizon)
        return self.rng.uniform(low, high) if high > low else -1.0

    def _count(self, mean: float) -> int:
        count = int(mean)
        return count + (1 if self.rng.random() < mean - count else 0)


def simulate(municipality: Municipality, work_dir: Path | None = None) -> Iterator[dict[str, Any]]:
    """All events of the municipality in time order, with memory bounded by one day."""
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="advisering-sim-") as tmp:
        buckets = [Path(tmp) / f"day-{day:05d}.jsonl" for day in range(municipality.days)]
        handles = [path.open("ab") for path in buckets]
        try:
            for number in range(municipality.citizens):
                for event in municipality.citizen(number).simulate():
                    day = (dt.datetime.fromisoformat(event["time"]) - municipality.start).days
                    handles[min(max(day, 0), municipality.days - 1)].write(
                        orjson.dumps(event) + b"\n")
        finally:
            for handle in handles:
                handle.close()
        for path in buckets:
            day_events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
            path.unlink()
            day_events.sort(key=lambda e: (e["time"], e["id"]))
            yield from day_events


def default_start(days: int) -> dt.datetime:
    """The period ends today: it starts ``days`` days before today's midnight (CET)."""
    today = dt.datetime.now(CET).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days)

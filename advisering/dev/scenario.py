"""A small built-in municipality for the demo and the tests.

Five synthetic citizens shared across departments, and the events that make
each shipped rule fire once. The CPR numbers are synthetic (built from a
counter, valid in form only) and are pseudonymised at the edge like any other.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

SCENARIO_NAMESPACE = uuid.UUID("6f1c7a52-4a3e-4f57-9a55-0c6b1f0e2d11")


def synthetic_cpr(number: int) -> str:
    """A CPR number valid in form: a real date (1 Jan 1950 + number days) and a serial."""
    born = dt.date(1950, 1, 1) + dt.timedelta(days=number * 37 % 20000)
    serial = 1000 + number % 9000
    seventh = 0 if born.year < 2000 else 4
    serial = seventh * 1000 + serial % 1000
    return f"{born:%d%m%y}-{serial:04d}"


def _case(case_id: str, kle: str, status: str, department: str, unit: str,
          caseworker: str | None, sensitivity: str = "fortrolige") -> dict[str, Any]:
    case = {"id": case_id, "kle": kle, "status": status, "department": department,
            "unit": unit, "sensitivity": sensitivity}
    if caseworker:
        case["caseworker"] = caseworker
    return case


def event(
    seq: int, source: str, event_type: str, when: dt.datetime, cpr: str,
    case: dict[str, Any] | None = None, **extra: Any,
) -> dict[str, Any]:
    """A CloudEvent as a source system would publish it (party given by CPR)."""
    data: dict[str, Any] = {"parties": [{"cpr": cpr, "role": "primaer"}]}
    if case is not None:
        data["case"] = case
    data.update(extra)
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid5(SCENARIO_NAMESPACE, f"{source}-{seq}")),
        "source": source,
        "type": event_type,
        "time": when.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    if case is not None:
        body["subject"] = case["id"]
    return body


SCENARIO_CITIZENS = (11, 22, 33, 44, 55)
"""The numbers of the scenario's five citizens (:func:`synthetic_cpr`)."""


def scenario_cprs() -> list[str]:
    """The five citizens' synthetic CPR numbers: parent, elder, fragile, mover, deceased."""
    return [synthetic_cpr(n) for n in SCENARIO_CITIZENS]


def demo_scenario(start: dt.datetime | None = None) -> list[list[dict[str, Any]]]:
    """The events of the built-in municipality, in waves to publish one after another.

    Each wave only depends on earlier waves having been processed, as it
    would be in a municipality where these things happen minutes or days
    apart; the events are keyed by their (only) party's pseudonym, so each
    citizen's events keep their order even when all waves go in one go.
    """
    t0 = start or dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))

    def at(minutes: int) -> dt.datetime:
        return t0 + dt.timedelta(minutes=minutes)

    parent, elder, fragile, mover, late = scenario_cprs()
    jc_parent = _case("MOM-2026-00123", "32.24.06", "afgjort", "jobcenter", "jobcenter-nord",
                      "jc-4711")
    child = _case("DUBU-2025-0815", "34.15.00", "oplyst", "boern-familie", "bf-syd", "bf-0042")
    homecare = _case("CARE-2024-3301", "27.36.04", "afgjort", "aeldre", "hjemmepleje-vest",
                     "hp-0107")
    jc_fragile = _case("MOM-2026-00456", "15.20.00", "oplyst", "jobcenter", "jobcenter-syd",
                       "jc-2203")
    psych = _case("SP-2025-0077", "27.12.00", "afgjort", "handicap-psykiatri", "socialpsykiatri",
                  "sp-0031", sensitivity="foelsomme")
    benefit_mover = _case("KY-2026-1188", "32.24.02", "afgjort", "ydelse", "ydelse-central",
                          "yd-0550")
    school = _case("SKOLE-2026-0042", "17.07.00", "oplyst", "skole", "pps", None)
    elder_care = _case("CARE-2023-1207", "27.36.04", "afgjort", "aeldre", "hjemmepleje-oest",
                       "hp-0230")
    health = _case("SUND-2025-0912", "29.30.00", "afgjort", "sundhed", "genoptraening", "su-0018")
    second_child = _case("DUBU-2026-0101", "34.15.00", "opstaaet", "boern-familie", "bf-nord",
                         "bf-0077")
    engagements = [
        event(1, "momentum", "case.opened", at(0), parent, jc_parent),
        event(1, "nexus", "case.opened", at(2), elder, homecare),
        event(2, "momentum", "case.opened", at(3), fragile, jc_fragile),
        event(1, "sensum", "case.opened", at(4), fragile, psych),
        event(1, "kmd-ydelse", "case.opened", at(5), mover, benefit_mover),
        event(1, "elevsag", "case.opened", at(6), mover, school),
        event(2, "nexus", "case.opened", at(7), late, elder_care),
        event(1, "sundhed", "case.opened", at(8), late, health),
    ]
    children = [event(1, "dubu", "case.opened", at(10), parent, child)]
    happenings = [
        event(3, "momentum", "benefit.changed", at(20), parent, jc_parent,
              benefit={"action": "sanctioned"}),
        event(1, "sundhedsplatformen", "citizen.admitted", at(30), elder),
        event(4, "momentum", "appointment.missed", at(40), fragile, jc_fragile,
              appointment={"kind": "samtale"}),
        event(1, "cpr", "citizen.moved", at(50), mover),
        event(2, "cpr", "citizen.deceased", at(60), late),
    ]
    later = [
        event(2, "dubu", "case.opened", at(70), parent, second_child),
        event(2, "sundhedsplatformen", "citizen.discharged", at(90), elder),
    ]
    return [engagements, children, happenings, later]


# (rule, recipient caseworker or unit key, related case) for every notification
# the shipped rules give on demo_scenario(): the tests' expected set.
DEMO_EXPECTED = frozenset({
    ("ny-boernesag-orientering", "bf-0042", "DUBU-2025-0815"),
    ("sanktion-til-boernesag", "bf-0042", "DUBU-2025-0815"),
    ("indlaeggelse-til-hjemmepleje", "hp-0107", "CARE-2024-3301"),
    ("udskrivning-til-hjemmepleje", "hp-0107", "CARE-2024-3301"),
    ("udeblivelse-til-socialpsykiatri", "sp-0031", "SP-2025-0077"),
    ("flytning-til-alle", "yd-0550", "KY-2026-1188"),
    ("flytning-til-alle", "unit:pps", "SKOLE-2026-0042"),
    ("doedsfald-til-alle", "hp-0230", "CARE-2023-1207"),
    ("doedsfald-til-alle", "su-0018", "SUND-2025-0912"),
    ("ny-boernesag-orientering", "bf-0077", "DUBU-2026-0101"),
})

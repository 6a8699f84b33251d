"""Small builders for the unit tests: synthetic citizens, cases, events and rule files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from advisering.dev.demo import demo_grants
from advisering.engine.matcher import Matcher
from advisering.engine.overview import CitizenState, apply_event
from advisering.engine.rules import Rule, RuleSet, load_rules
from advisering.events import CaseEvent, Rejection, Vocabulary, validate_event
from advisering.grants import GrantCheck
from advisering.kafka.topics import load_vocabulary
from advisering.privacy import pseudonymise

ROOT = Path(__file__).resolve().parents[2]
KEY = b"k" * 32
VOCABULARY: Vocabulary = load_vocabulary(ROOT / "topics")
# The demo's source systems with their real grants (what the worker's intake checks).
DEMO_GRANTS = GrantCheck(dict(demo_grants()))

# Clearly synthetic CPR numbers (1 January 1970 and 2 February 1980, sequence 0001/0002).
CPR_A = "0101700001"
CPR_B = "0202800002"
CITIZEN_A = pseudonymise(CPR_A, KEY)
CITIZEN_B = pseudonymise(CPR_B, KEY)

BASE_TIME = dt.datetime(2026, 11, 29, 9, 12, tzinfo=dt.timezone(dt.timedelta(hours=1)))
CREATED = "2026-11-29T09:12:01+01:00"


def at(hours: float = 0.0) -> str:
    """The base event time moved by ``hours``, as RFC 3339 text."""
    return (BASE_TIME + dt.timedelta(hours=hours)).isoformat()


def case(
    case_id: str,
    department: str,
    *,
    kle: str = "32.24.06",
    status: str = "oplyst",
    unit: str | None = None,
    caseworker: str | None = "sb-0001",
    sensitivity: str | None = None,
    previous_status: str | None = None,
) -> dict[str, Any]:
    """A data.case mapping; ``unit`` defaults to ``<department>-nord``."""
    out: dict[str, Any] = {
        "id": case_id, "kle": kle, "status": status, "department": department,
        "unit": unit or f"{department}-nord",
    }
    if caseworker is not None:
        out["caseworker"] = caseworker
    if sensitivity is not None:
        out["sensitivity"] = sensitivity
    if previous_status is not None:
        out["previous_status"] = previous_status
    return out


def event_dict(
    event_type: str,
    case_data: dict[str, Any] | None = None,
    *,
    event_id: str = "ev-1",
    source: str = "momentum",
    time: str | None = None,
    citizen: str = CITIZEN_A,
    **extra: Any,
) -> dict[str, Any]:
    """A CloudEvents envelope as a plain dict; ``extra`` goes into ``data``."""
    data: dict[str, Any] = {"parties": [{"citizen": citizen, "role": "primaer"}], **extra}
    if case_data is not None:
        data["case"] = case_data
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time or at(),
        "datacontenttype": "application/json",
        "data": data,
    }


def valid(raw: dict[str, Any], vocabulary: Vocabulary = VOCABULARY) -> CaseEvent:
    """``raw`` validated with the real vocabulary; fails the test on a rejection."""
    result = validate_event(raw, vocabulary)
    assert not isinstance(result, Rejection), result
    return result


def event(event_type: str, case_data: dict[str, Any] | None = None, **kwargs: Any) -> CaseEvent:
    """A validated CaseEvent (see :func:`event_dict` for the arguments)."""
    return valid(event_dict(event_type, case_data, **kwargs))


def state_with(*cases: dict[str, Any], hours: float = -24 * 28) -> CitizenState:
    """A citizen state with each case opened by a case.opened event ``hours`` from base."""
    state = CitizenState()
    for index, case_data in enumerate(cases):
        opened = event("case.opened", case_data, event_id=f"open-{index}", time=at(hours))
        assert apply_event(state, opened)
    return state


def real_rules() -> RuleSet:
    """The shipped rules/ directory, loaded with the shipped vocabulary."""
    return load_rules(ROOT / "rules", VOCABULARY)


def real_matcher() -> Matcher:
    return Matcher(real_rules())


def rule_doc(**overrides: Any) -> dict[str, Any]:
    """A valid notify: related rule document; keys given as None are removed."""
    doc: dict[str, Any] = {
        "id": "test-regel",
        "title": "Testregel for en sanktion",
        "legal_basis": "Forvaltningsloven § 28",
        "severity": "normal",
        "when": {"type": "benefit.changed", "department": "jobcenter",
                 "where": {"benefit.action": ["sanctioned"]}},
        "notify": "related",
        "related": {"department": "boern-familie", "kle": "34"},
        "message": "Borgeren i din sag {related.id} er sanktioneret ({event.date}).",
        "throttle": "P1D",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def write_rule(directory: Path, name: str, doc: dict[str, Any]) -> Path:
    """Write ``doc`` as ``directory/name`` in YAML and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def make_rule(**overrides: Any) -> Rule:
    return Rule.model_validate(rule_doc(**overrides))

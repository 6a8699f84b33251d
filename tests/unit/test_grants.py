"""Grants per source: the schema, the type patterns and the check of an event against them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from advisering.events import CaseEvent, RejectReason
from advisering.grants import GrantCheck, Grants, parse_list, vocabulary_problems
from advisering.worker import steps
from tests.unit.builders import CITIZEN_A, CREATED, VOCABULARY, at, case

JOBCENTER = Grants(types=("case.*", "benefit.changed", "appointment.missed"),
                   departments=("jobcenter", "ydelse"))
CPR_REGISTRY = Grants(types=("citizen.moved", "citizen.deceased"))


def event(source: str, event_type: str, department: str | None = "jobcenter",
          caseworker: str | None = "jc-1") -> dict[str, Any]:
    data: dict[str, Any] = {"parties": [{"citizen": CITIZEN_A, "role": "primaer"}]}
    if department is not None:
        data["case"] = case("C-1", department, caseworker=caseworker)
    return {"specversion": "1.0", "id": f"{source}-{event_type}", "source": source,
            "type": event_type, "time": at(), "data": data}


def checked(raw: dict[str, Any], check: GrantCheck) -> Any:
    return check.refusal(CaseEvent.model_validate(raw))


def test_family_pattern_grants_its_types_and_never_citizen_types() -> None:
    """`case.*` grants every case.<x> type, also ones not in the core list, but no citizen.*."""
    assert JOBCENTER.allows_type("case.opened")
    assert JOBCENTER.allows_type("case.deadline-exceeded")
    assert JOBCENTER.allows_type("benefit.changed")
    assert not JOBCENTER.allows_type("document.added")
    assert not JOBCENTER.allows_type("citizen.deceased")
    assert not JOBCENTER.allows_type("citizen.moved")


@pytest.mark.parametrize("pattern", ["*", "*.*"])
def test_bare_wildcard_is_refused(pattern: str) -> None:
    """A pattern that would grant everything (and so citizen.*) is not a valid grant."""
    with pytest.raises(ValidationError, match="not allowed"):
        Grants(types=(pattern,), departments=("jobcenter",))


@pytest.mark.parametrize("pattern", ["case", "case.", "case.op*", "Case.opened", ".*", "case.*.x"])
def test_malformed_type_patterns_are_refused(pattern: str) -> None:
    """Only an exact type or a whole family (`x.*`) is a type pattern."""
    with pytest.raises(ValidationError, match="type pattern"):
        Grants(types=(pattern,), departments=("jobcenter",))


def test_department_wildcards_are_refused() -> None:
    """Departments are exact names: a new department is granted to nobody by accident."""
    with pytest.raises(ValidationError, match="no wildcards"):
        Grants(types=("case.*",), departments=("*",))


def test_case_types_need_a_department_registry_types_do_not() -> None:
    """Types that carry a case need at least one department; citizen.* alone needs none."""
    with pytest.raises(ValidationError, match="carry a case"):
        Grants(types=("case.opened",))
    assert Grants(types=("citizen.*",)).departments == ()


def test_unknown_fields_in_grants_are_refused() -> None:
    """A misspelt key in grants (`department`) is an error, not a silently empty grant."""
    with pytest.raises(ValidationError):
        Grants.model_validate({"types": ["case.*"], "department": ["jobcenter"]})


def test_vocabulary_check_names_unknown_types_families_and_departments() -> None:
    """Grants are checked against the vocabulary: unknown type, empty family, unknown department."""
    grants = Grants(types=("case.opend", "benfit.*", "case.deadline-exceeded"),
                    departments=("jobcentre", "tandpleje"))
    problems = dict(vocabulary_problems(grants, VOCABULARY))
    assert "'case.opened'" in problems["types[0]"]  # did you mean
    assert "benfit.*" in problems["types[1]"]
    assert "types[2]" not in problems  # declared in topics/case-events.yaml
    assert "unknown department 'jobcentre'" in problems["departments[0]"]
    assert "departments[1]" not in problems
    assert vocabulary_problems(JOBCENTER, VOCABULARY) == []


def test_parse_list_splits_commas_and_drops_blanks() -> None:
    """The CLI's comma lists: spaces around items and empty items do not count."""
    assert parse_list(" case.*, benefit.changed,,") == ("case.*", "benefit.changed")
    assert parse_list(None) == ()


def test_citizen_event_needs_an_explicit_citizen_grant() -> None:
    """The job centre may not announce a death; the CPR registry may."""
    check = GrantCheck({"momentum": JOBCENTER, "cpr": CPR_REGISTRY})
    refusal = checked(event("momentum", "citizen.deceased", None), check)
    assert refusal is not None
    assert (refusal.reason, refusal.path) == (RejectReason.NOT_GRANTED, "type")
    assert "'citizen.deceased'" in refusal.message
    assert checked(event("cpr", "citizen.deceased", None), check) is None
    assert checked(event("cpr", "citizen.admitted", None), check) is not None


def test_case_in_an_ungranted_department_is_refused_naming_it() -> None:
    """A job-centre key opening a boern-familie case is refused at data.case.department."""
    check = GrantCheck({"momentum": JOBCENTER})
    refusal = checked(event("momentum", "case.opened", "boern-familie", "insider-1"), check)
    assert refusal is not None
    assert (refusal.reason, refusal.path) == (RejectReason.NOT_GRANTED, "data.case.department")
    assert "'boern-familie'" in refusal.message
    assert "insider-1" not in refusal.message
    assert checked(event("momentum", "case.opened", "ydelse"), check) is None


def test_registry_event_with_a_case_is_checked_against_departments_too() -> None:
    """A citizen.* event that does carry a case may not name a department the source lacks."""
    check = GrantCheck({"cpr": CPR_REGISTRY})
    refusal = checked(event("cpr", "citizen.moved", "boern-familie"), check)
    assert refusal is not None and refusal.path == "data.case.department"


def test_unknown_source_and_source_without_grants() -> None:
    """An unregistered source is unknown_source; one registered without grants gets nothing."""
    check = GrantCheck({"legacy": None})
    unknown = checked(event("momentum", "case.opened"), check)
    assert unknown is not None and unknown.reason is RejectReason.UNKNOWN_SOURCE
    legacy = checked(event("legacy", "case.opened"), check)
    assert legacy is not None and legacy.reason is RejectReason.NOT_GRANTED
    assert "no grants" in legacy.message


def test_intake_dead_letters_forgeries_and_unknown_sources() -> None:
    """The worker's intake step turns an ungranted or unknown-source event into a dead letter."""
    check = GrantCheck({"momentum": JOBCENTER})
    cases = {
        "citizen.deceased": (event("momentum", "citizen.deceased", None), "not_granted"),
        "boern-familie": (event("momentum", "case.opened", "boern-familie", "insider-1"),
                          "not_granted"),
        "unknown": (event("fremmed", "case.opened"), "unknown_source"),
    }
    for raw, reason in cases.values():
        box = steps.intake(orjson.dumps(raw), VOCABULARY, grants=check, topic="t", partition=0,
                           offset=1, now=CREATED)
        assert box.citizen_events == []
        assert len(box.dead_letters) == 1
        assert orjson.loads(box.dead_letters[0][1])["reason"] == reason
    granted = steps.intake(orjson.dumps(event("momentum", "case.opened")), VOCABULARY,
                           grants=check, topic="t", partition=0, offset=2, now=CREATED)
    assert granted.dead_letters == [] and len(granted.citizen_events) == 1


def test_invalid_event_keeps_its_validation_reason_before_grants() -> None:
    """An unknown type is unknown_type, not not_granted: validation comes before grants."""
    box = steps.intake(orjson.dumps(event("momentum", "case.teleported")), VOCABULARY,
                       grants=GrantCheck({"momentum": JOBCENTER}), topic="t", partition=0,
                       offset=1, now=CREATED)
    assert orjson.loads(box.dead_letters[0][1])["reason"] == "unknown_type"

"""What data may hold: per-type schemas from the vocabulary, bounds, and the vocabulary file."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from advisering.dev.scenario import demo_scenario
from advisering.edge.prepare import prepare_event
from advisering.events import (
    CaseEvent,
    Rejection,
    RejectReason,
    Vocabulary,
    decode_event,
    validate_event,
)
from advisering.kafka.topics import load_vocabulary
from advisering.yamlfiles import YamlFileError
from tests.unit.builders import KEY, ROOT, VOCABULARY, case, event_dict

JC = case("MOM-1", "jobcenter", kle="32.24.06", caseworker="jc-1")


def both(raw: dict[str, Any], vocabulary: Vocabulary = VOCABULARY) -> CaseEvent | Rejection:
    """validate_event and decode_event (fast and slow path) agree; the shared answer."""
    validated = validate_event(raw, vocabulary)
    decoded = decode_event(orjson.dumps(raw), vocabulary)
    assert validated == decoded
    return validated


def refused(raw: dict[str, Any], vocabulary: Vocabulary = VOCABULARY) -> Rejection:
    result = both(raw, vocabulary)
    assert isinstance(result, Rejection), result
    return result


def accepted(raw: dict[str, Any], vocabulary: Vocabulary = VOCABULARY) -> CaseEvent:
    result = both(raw, vocabulary)
    assert isinstance(result, CaseEvent), result
    return result


def test_core_benefit_action_is_accepted_and_readable() -> None:
    """benefit.changed with a benefit.action of the contract is accepted, its value kept."""
    event = accepted(event_dict("benefit.changed", JC, benefit={"action": "stopped"}))
    assert event.data_value("benefit.action") == "stopped"


def test_declared_fields_of_the_shipped_vocabulary_are_accepted() -> None:
    """Each extension field topics/case-events.yaml declares passes with a value of its type."""
    accepted(event_dict("appointment.missed", JC, appointment={"kind": "samtale"}))
    accepted(event_dict("citizen.admitted", hospital={"department": "medicinsk"}))
    accepted(event_dict("citizen.moved", move={"within_municipality": True}))
    accepted(event_dict("case.deadline-exceeded", JC, deadline="2026-12-01"))


def test_every_event_of_the_scenario_is_accepted() -> None:
    """The demo scenario uses only declared data fields (test_simulator covers the simulator)."""
    for raw in (raw for wave in demo_scenario() for raw in wave):
        result = prepare_event(raw, KEY, VOCABULARY)
        assert isinstance(result, CaseEvent), (raw["type"], result)


@pytest.mark.parametrize(("event_type", "extra", "path"), [
    ("case.opened", {"note": "ring til borgeren"}, "data.note"),
    ("case.opened", {"benefit": {"action": "stopped"}}, "data.benefit"),
    ("benefit.changed", {"benefit": {"action": "stopped", "reason": "x"}},
     "data.benefit.reason"),
    ("appointment.missed", {"appointment": {"kind": "samtale", "place": "x"}},
     "data.appointment.place"),
    ("citizen.moved", {"move": {"within_municipality": True}, "journal": {"a": 1}},
     "data.journal"),
])
def test_unknown_field_is_refused_with_its_path(event_type: str, extra: dict[str, Any],
                                                path: str) -> None:
    """A field no one declared for the event's type is UNKNOWN_FIELD at its path."""
    case_data = None if event_type.startswith("citizen.") else JC
    raw = event_dict(event_type, case_data, **extra)
    if event_type == "benefit.changed" and "benefit" not in extra:
        raw["data"]["benefit"] = {"action": "stopped"}
    result = refused(raw)
    assert (result.reason, result.path) == (RejectReason.UNKNOWN_FIELD, path)


def test_benefit_action_is_required_for_benefit_changed() -> None:
    """benefit.changed without benefit, or without benefit.action, is MISSING_FIELD."""
    result = refused(event_dict("benefit.changed", JC))
    assert (result.reason, result.path) == (RejectReason.MISSING_FIELD, "data.benefit")
    result = refused(event_dict("benefit.changed", JC, benefit={}))
    assert (result.reason, result.path) == (RejectReason.MISSING_FIELD, "data.benefit.action")


@pytest.mark.parametrize(("event_type", "extra", "path"), [
    ("benefit.changed", {"benefit": {"action": "paused"}}, "data.benefit.action"),
    ("appointment.missed", {"appointment": {"kind": "fest"}}, "data.appointment.kind"),
])
def test_value_outside_the_enum_is_invalid(event_type: str, extra: dict[str, Any],
                                           path: str) -> None:
    """A value outside a declared enum is INVALID_FIELD at its path."""
    result = refused(event_dict(event_type, JC, **extra))
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, path)


@pytest.mark.parametrize(("extra", "path"), [
    ({"move": {"within_municipality": "yes"}}, "data.move.within_municipality"),
    ({"move": {"within_municipality": 1}}, "data.move.within_municipality"),
    ({"move": "inside"}, "data.move"),
    ({"move": {"within_municipality": [True]}}, "data.move.within_municipality"),
])
def test_value_of_the_wrong_type_is_invalid(extra: dict[str, Any], path: str) -> None:
    """A declared field with a value of another JSON type (no coercion) is INVALID_FIELD."""
    result = refused(event_dict("citizen.moved", **extra))
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, path)


def test_date_and_string_length_are_checked() -> None:
    """A date that is no calendar day, and a string past its max_length, are INVALID_FIELD."""
    result = refused(event_dict("case.deadline-exceeded", JC, deadline="2026-02-30"))
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, "data.deadline")
    result = refused(event_dict("citizen.admitted", hospital={"department": "x" * 65}))
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD,
                                            "data.hospital.department")


def test_cpr_in_an_unknown_field_is_still_cpr_detected() -> None:
    """The CPR scan runs before the schema: a CPR in an undeclared field is CPR_DETECTED."""
    result = refused(event_dict("case.opened", JC, note="ring om 010170-0001"))
    assert (result.reason, result.path) == (RejectReason.CPR_DETECTED, "data.note")


def test_parties_are_bounded_by_the_vocabulary_limit() -> None:
    """More parties than max_parties is TOO_LARGE at data.parties; the limit itself passes."""
    vocabulary = Vocabulary(max_parties=3)
    citizen = event_dict("case.opened", JC)["data"]["parties"][0]["citizen"]
    raw = event_dict("case.opened", JC)
    raw["data"]["parties"] = [{"citizen": citizen, "role": f"r{n}"} for n in range(3)]
    accepted(raw, vocabulary)
    raw["data"]["parties"].append({"citizen": citizen, "role": "r3"})
    result = refused(raw, vocabulary)
    assert (result.reason, result.path) == (RejectReason.TOO_LARGE, "data.parties")
    raw["data"]["parties"] *= 300  # past the model's own bound too
    assert refused(raw, vocabulary).reason == RejectReason.TOO_LARGE


def test_default_parties_limit_is_twenty() -> None:
    """Without settings, at most 20 parties per event (ADVISERING_EVENT_MAX_PARTIES)."""
    raw = event_dict("case.opened", JC)
    raw["data"]["parties"] *= 21
    assert refused(raw).reason == RejectReason.TOO_LARGE


@pytest.mark.parametrize(("field", "length"), [
    ("subject", 129), ("dataschema", 257), ("type", 65),
])
def test_envelope_strings_are_bounded(field: str, length: int) -> None:
    """subject, dataschema and type have a maximum length."""
    raw = event_dict("case.opened", JC)
    raw[field] = "case." + "x" * (length - 5) if field == "type" else "x" * length
    result = refused(raw)
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, field)


# --- the vocabulary file ----------------------------------------------------------------


def _topics_with(tmp_path: Path, data_fields: str) -> Path:
    target = tmp_path / "topics"
    shutil.copytree(ROOT / "topics", target)
    path = target / "case-events.yaml"
    text = path.read_text()
    text = text[:text.index("  data_fields:")] + "  data_fields:\n" + data_fields
    path.write_text(text)
    return target


def test_one_line_declares_an_extension_field(tmp_path: Path) -> None:
    """A dotted name and a type in data_fields are enough; the field then passes, typed."""
    topics = _topics_with(tmp_path, "    benefit.changed:\n      benefit.reason: {enum: [frist]}\n"
                                    '    "*":\n      channel: string\n')
    vocabulary = load_vocabulary(topics)
    accepted(event_dict("benefit.changed", JC, benefit={"action": "stopped", "reason": "frist"},
                        channel="post"), vocabulary)
    accepted(event_dict("case.opened", JC, channel="post"), vocabulary)
    result = refused(event_dict("benefit.changed", JC, benefit={"action": "stopped",
                                                                "reason": "x"}), vocabulary)
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, "data.benefit.reason")


@pytest.mark.parametrize(("declaration", "path", "words"), [
    ("    case.opened:\n      note: strng\n",
     "vocabulary.data_fields.case.opened.note.type", "string"),
    ("    case.opened:\n      note: {type: string, max_length: 100000}\n",
     "vocabulary.data_fields.case.opened.note.max_length", "less than or equal"),
    ("    case.opened:\n      note: {type: string, colour: red}\n",
     "vocabulary.data_fields.case.opened.note.colour", "unknown field"),
    ("    case.openedd:\n      note: string\n", "vocabulary", "case.openedd"),
    ("    benefit.changed:\n      benefit.action: string\n", "vocabulary", "benefit.action"),
    ("    case.opened:\n      case.note: string\n", "vocabulary", "case.note"),
    ("    case.opened:\n      Note: string\n", "vocabulary", "'Note'"),
    ("    case.opened:\n      a: string\n      a.b: string\n", "vocabulary", "a.b"),
    ("    case.opened:\n      n: {type: integer, enum: [a]}\n", "vocabulary", "enum"),
])
def test_bad_declaration_names_the_file_and_the_field(
        tmp_path: Path, declaration: str, path: str, words: str) -> None:
    """A wrong type, bound, key, event type or clashing name is refused naming file and field."""
    topics = _topics_with(tmp_path, declaration)
    with pytest.raises(YamlFileError) as caught:
        load_vocabulary(topics)
    problem = caught.value.problems[0]
    assert problem.file == topics / "case-events.yaml"
    assert problem.path == path
    assert words in problem.message


@pytest.mark.parametrize(("kind", "good", "bad"), [
    ("integer", [0, -3, 2**53], [1.5, "1", True, 2**53 + 1]),
    ("number", [1, 2.5, -0.25], ["1", True, [1]]),
    ("boolean", [True, False], [1, "true"]),
    ("datetime", ["2026-11-29T09:12:00+01:00", "2026-11-29T08:12:00Z"],
     ["2026-11-29T09:12:00", "i morgen", 5]),
    ("date", ["2026-12-01"], ["2026-12-1", "2026-12-01T00:00:00Z", 20261201]),
])
def test_each_declared_type_is_checked_strictly(kind: Any, good: list[Any],
                                                bad: list[Any]) -> None:
    """Each field type accepts its JSON values and refuses the others, without conversion."""
    from advisering.event_schema import DataField  # noqa: PLC0415

    vocabulary = Vocabulary.extended(data_fields=[
        DataField(event_type="case.opened", path=("x",), kind=kind)])
    for value in good:
        accepted(event_dict("case.opened", JC, x=value), vocabulary)
    for value in bad:
        result = refused(event_dict("case.opened", JC, x=value), vocabulary)
        assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, "data.x"), value

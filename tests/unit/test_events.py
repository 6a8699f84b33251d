"""Case events: valid events pass; every kind of bad input is a Rejection with reason and path."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from advisering.events import (
    CaseEvent,
    Rejection,
    RejectReason,
    Vocabulary,
    decode_event,
    encode_event,
    validate_event,
)
from tests.unit.builders import CITIZEN_A, CITIZEN_B, VOCABULARY, case, event_dict

CPR = "0101700001"


def good() -> dict[str, Any]:
    """The DESIGN.md example event, with a synthetic pseudonym."""
    return event_dict(
        "benefit.changed",
        case("MOM-2026-00123", "jobcenter", kle="32.24.06", status="afgjort",
             previous_status="oplyst", unit="jobcenter-nord", caseworker="jc-4711",
             sensitivity="fortrolige"),
        event_id="4f0b2c1e-8d1a-4e7b-9a51-0d2f7c9e1a10",
        benefit={"action": "sanctioned"},
    )


def rejected(raw: Any, vocabulary: Vocabulary = VOCABULARY) -> Rejection:
    result = validate_event(raw, vocabulary)
    assert isinstance(result, Rejection), result
    return result


def test_valid_event_passes() -> None:
    """The design's example event validates into a CaseEvent with its fields."""
    result = validate_event(good(), VOCABULARY)
    assert isinstance(result, CaseEvent)
    assert result.data.case is not None
    assert result.data.case.caseworker == "jc-4711"
    assert result.data.parties[0].citizen == CITIZEN_A
    assert result.data_value("benefit.action") == "sanctioned"
    assert result.key == CITIZEN_A
    assert result.department == "jobcenter"


def test_the_key_is_the_first_partys_pseudonym() -> None:
    """A multi-party event is keyed by its first party, whichever role it has."""
    raw = good()
    raw["data"]["parties"] = [{"citizen": CITIZEN_B, "role": "barn"},
                              {"citizen": CITIZEN_A, "role": "primaer"}]
    result = validate_event(raw, VOCABULARY)
    assert isinstance(result, CaseEvent)
    assert result.key == CITIZEN_B
    raw["data"]["parties"].reverse()
    reversed_result = validate_event(raw, VOCABULARY)
    assert isinstance(reversed_result, CaseEvent)
    assert reversed_result.key == CITIZEN_A


def test_an_event_without_parties_is_rejected() -> None:
    """Every valid event has a first party to key it by: an empty party list is rejected."""
    raw = good()
    raw["data"]["parties"] = []
    result = rejected(raw)
    assert result.reason == RejectReason.INVALID_FIELD
    assert result.path == "data.parties"


def test_sensitivity_defaults_to_fortrolige() -> None:
    """A case without sensitivity is fortrolige, as DESIGN.md says."""
    raw = good()
    del raw["data"]["case"]["sensitivity"]
    result = validate_event(raw, VOCABULARY)
    assert isinstance(result, CaseEvent)
    assert result.data.case is not None
    assert result.data.case.sensitivity == "fortrolige"


def test_decode_event_round_trip() -> None:
    """Encoding a valid event and decoding the bytes gives the same event."""
    first = validate_event(good(), VOCABULARY)
    assert isinstance(first, CaseEvent)
    assert decode_event(encode_event(first), VOCABULARY) == first


def test_not_json_is_rejected() -> None:
    """Bytes that are not JSON are NOT_JSON."""
    result = decode_event(b"{oops", VOCABULARY)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.NOT_JSON
    assert result.path == ""


def test_empty_record_is_not_json() -> None:
    """A record without a value (None) is NOT_JSON."""
    result = decode_event(None, VOCABULARY)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.NOT_JSON


def test_json_list_is_not_an_object() -> None:
    """A JSON array is NOT_AN_OBJECT."""
    result = decode_event(orjson.dumps([good()]), VOCABULARY)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.NOT_AN_OBJECT


@pytest.mark.parametrize("field", ["source", "id", "type", "time", "specversion", "data"])
def test_missing_envelope_field(field: str) -> None:
    """A missing required envelope field is MISSING_FIELD at that field."""
    raw = good()
    del raw[field]
    result = rejected(raw)
    assert result.reason is RejectReason.MISSING_FIELD
    assert result.path == field


def test_missing_case_field_has_nested_path() -> None:
    """A case without unit is MISSING_FIELD at data.case.unit."""
    raw = good()
    del raw["data"]["case"]["unit"]
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.MISSING_FIELD, "data.case.unit")


@pytest.mark.parametrize("kle", ["3", "32.2", "32.24.06.01", "ab.cd", ""])
def test_bad_kle_is_invalid_field(kle: str) -> None:
    """A KLE number that is not dot-separated two-digit groups is INVALID_FIELD data.case.kle."""
    raw = good()
    raw["data"]["case"]["kle"] = kle
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, "data.case.kle")


def test_naive_time_is_invalid_field() -> None:
    """A time without a UTC offset is INVALID_FIELD at time."""
    raw = good()
    raw["time"] = "2026-11-29T09:12:00"
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, "time")


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        (("data", "case", "status"), "lukket", "data.case.status"),
        (("data", "case", "sensitivity"), "hemmelig", "data.case.sensitivity"),
        (("specversion",), "0.3", "specversion"),
        (("source",), "Momentum System", "source"),
        (("time",), "i går", "time"),
    ],
)
def test_wrong_values_are_invalid_field(where: tuple[str, ...], value: str, path: str) -> None:
    """A value outside the contract is INVALID_FIELD with its dotted path."""
    raw = good()
    target = raw
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.INVALID_FIELD, path)


def test_party_without_pseudonym_is_invalid() -> None:
    """A party whose citizen is not a pseudonym is INVALID_FIELD under data.parties."""
    raw = good()
    raw["data"]["parties"] = [{"citizen": "anna"}]
    result = rejected(raw)
    assert result.reason is RejectReason.INVALID_FIELD
    assert result.path.startswith("data.parties")
    assert result.path.endswith("citizen")


def test_unknown_envelope_field() -> None:
    """An envelope field CloudEvents and DESIGN.md do not define is UNKNOWN_FIELD."""
    raw = good()
    raw["colour"] = "blue"
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.UNKNOWN_FIELD, "colour")


def test_unknown_case_field() -> None:
    """A case field outside the metadata contract is UNKNOWN_FIELD at data.case.<field>."""
    raw = good()
    raw["data"]["case"]["content"] = "journal text"
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.UNKNOWN_FIELD, "data.case.content")


def test_unknown_type() -> None:
    """An event type in neither the core list nor topics/ is UNKNOWN_TYPE at type."""
    raw = good()
    raw["type"] = "case.exploded"
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.UNKNOWN_TYPE, "type")


@pytest.mark.parametrize(
    "event_type", ["case.opened", "case.closed", "benefit.changed", "appointment.missed",
                   "document.added"]
)
def test_non_citizen_event_without_case(event_type: str) -> None:
    """Every event type but citizen.* needs data.case: MISSING_CASE at data.case."""
    raw = good()
    raw["type"] = event_type
    del raw["data"]["case"]
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.MISSING_CASE, "data.case")


@pytest.mark.parametrize(
    "event_type",
    ["citizen.moved", "citizen.admitted", "citizen.discharged", "citizen.deceased"],
)
def test_citizen_event_without_case_is_valid(event_type: str) -> None:
    """Registry events (citizen.*) carry no case and are valid."""
    raw = event_dict(event_type, source="cpr-replika")
    raw["subject"] = "flytning-77"
    result = validate_event(raw, VOCABULARY)
    assert isinstance(result, CaseEvent)
    assert result.data.case is None
    assert result.department is None
    assert result.key == CITIZEN_A


def test_unknown_department() -> None:
    """A department neither core nor declared is UNKNOWN_DEPARTMENT at data.case.department."""
    raw = good()
    raw["data"]["case"]["department"] = "skattecenter"
    result = rejected(raw)
    assert (result.reason, result.path) == (
        RejectReason.UNKNOWN_DEPARTMENT, "data.case.department"
    )


def test_vocabulary_extras_from_topics_are_accepted() -> None:
    """Department tandpleje and type case.deadline-exceeded, declared in topics/, pass."""
    raw = event_dict("case.deadline-exceeded", case("TP-1", "tandpleje", kle="29.03"))
    assert isinstance(validate_event(raw, VOCABULARY), CaseEvent)
    assert "sundhedspleje" in VOCABULARY.departments


def test_vocabulary_extras_are_not_core() -> None:
    """Without the declared vocabulary the same extras are rejected."""
    raw = event_dict("case.deadline-exceeded", case("TP-1", "tandpleje", kle="29.03"))
    assert rejected(raw, Vocabulary()).reason is RejectReason.UNKNOWN_TYPE
    raw["type"] = "case.opened"
    assert rejected(raw, Vocabulary()).reason is RejectReason.UNKNOWN_DEPARTMENT


def _assert_no_cpr(result: Rejection, cpr: str) -> None:
    digits = cpr.replace("-", "")
    texts = [result.path, result.message, *(p for pair in result.problems for p in pair)]
    for text in texts:
        assert digits not in text.replace("-", ""), text


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda raw: raw["data"].update(note=f"borger {CPR}"), "data.note"),
        (lambda raw: raw["data"].update(note="cpr 010170-0001"), "data.note"),
        (lambda raw: raw["data"].update(note=1501700001), "data.note"),
        (lambda raw: raw.update(subject=CPR), "subject"),
        (lambda raw: raw["data"]["case"].update(id=f"SAG-{CPR}"), "data.case.id"),
        (lambda raw: raw["data"]["parties"].append({"cpr": CPR}), "data.parties[1].cpr"),
        (lambda raw: raw["data"].update(extra={"list": ["ok", CPR]}), "data.extra.list[1]"),
    ],
)
def test_cpr_anywhere_is_rejected_without_the_digits(mutate: Any, path: str) -> None:
    """A CPR-shaped value anywhere is CPR_DETECTED at its path, never repeating the digits."""
    raw = good()
    mutate(raw)
    result = rejected(raw)
    assert result.reason is RejectReason.CPR_DETECTED
    assert result.path == path
    _assert_no_cpr(result, CPR)
    _assert_no_cpr(result, "1501700001")


def test_cpr_check_comes_before_other_problems() -> None:
    """An event with a CPR number and other errors is reported as CPR_DETECTED."""
    raw = good()
    raw["colour"] = CPR
    del raw["source"]
    result = rejected(raw)
    assert (result.reason, result.path) == (RejectReason.CPR_DETECTED, "colour")


def test_cpr_as_mapping_key_is_not_repeated_in_path() -> None:
    """A CPR number used as a key in data is CPR_DETECTED, and the path hides the digits."""
    raw = good()
    raw["data"]["notes"] = {CPR: "ringede"}
    result = rejected(raw)
    assert result.reason is RejectReason.CPR_DETECTED
    _assert_no_cpr(result, CPR)


def test_not_json_message_has_no_cpr() -> None:
    """A broken record holding a CPR number is NOT_JSON without the digits in the message."""
    result = decode_event(b'{"note": 0101700001, ', VOCABULARY)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.NOT_JSON
    _assert_no_cpr(result, CPR)


def test_validate_does_not_mutate_input() -> None:
    """Validation leaves the caller's dict unchanged."""
    raw = good()
    before = copy.deepcopy(raw)
    validate_event(raw, VOCABULARY)
    assert raw == before


def _slow_decode(payload: bytes) -> Any:
    """decode_event without its fast path: orjson, the CPR walk, then the model."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "not_json"
    return validate_event(raw, VOCABULARY)


def _variants() -> list[bytes]:
    base = event_dict("benefit.changed", case("MOM-1", "jobcenter"), benefit={"action": "stopped"})
    text = orjson.dumps(base)
    variants = [
        text,
        orjson.dumps(event_dict("citizen.moved")),
        orjson.dumps(dict(base, type="case.exploded")),
        orjson.dumps(dict(base, extra_field=1)),
        orjson.dumps(dict(base, data=dict(base["data"], note="ring 010190-1234"))),
        orjson.dumps(dict(base, data=dict(base["data"], note="ring 0101901234"))),
        orjson.dumps(dict(base, data=dict(base["data"], count=1234567890123))),
        text.replace(b'"stopped"', b'"st\\u006fpped"'),
        text.replace(b'"ring"', b'"\\u0030101901234"'),
        text.replace(b'{"action":"stopped"}', b'{"action":"stopped","x":NaN}'),
        text.replace(b'{"action":"stopped"}', b'{"action":"stopped","x":Infinity}'),
        text.replace(b'"1.0"', b'"2.0"'),
        text[:-1],
        b"[1, 2]",
        b'"just a string"',
        orjson.dumps(dict(base, data=dict(base["data"], case=None))),
    ]
    escaped = dict(base, data=dict(base["data"], note="x"))
    variants.append(orjson.dumps(escaped).replace(b'"x"', b'"\\u00300101901234"'))
    return variants


@pytest.mark.parametrize("payload", _variants())
def test_fast_path_decodes_exactly_as_the_slow_path(payload: bytes) -> None:
    """decode_event's fast path (raw-bytes CPR pre-check) gives the slow path's answer."""
    fast = decode_event(payload, VOCABULARY)
    slow = _slow_decode(payload)
    if slow == "not_json":
        assert isinstance(fast, Rejection) and fast.reason is RejectReason.NOT_JSON
    else:
        assert fast == slow

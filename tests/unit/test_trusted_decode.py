"""The engine's decode of validated events: the same answers as the pydantic model."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from advisering.dev.scenario import demo_scenario
from advisering.edge.prepare import prepare_event
from advisering.engine.evaluate import process
from advisering.engine.overview import CitizenState
from advisering.engine.trusted import decode_trusted, decode_validated
from advisering.events import CaseEvent, Rejection, RejectReason, encode_event
from tests.unit.builders import CITIZEN_A, KEY, VOCABULARY, at, case, event_dict, real_matcher

CREATED = "2026-11-29T10:00:00.000+00:00"


def scenario_payloads() -> list[bytes]:
    """The demo scenario, pseudonymised, plus events the scenario lacks."""
    payloads = []
    for wave in demo_scenario():
        for raw in wave:
            event = prepare_event(raw, KEY, VOCABULARY)
            assert isinstance(event, CaseEvent)
            payloads.append(encode_event(event))
    jc = case("MOM-9", "jobcenter", kle="32.24.06", caseworker="jc-1")
    extras = [
        event_dict("case.opened", jc, event_id="x1", time=at(1)),
        event_dict("benefit.changed", jc, event_id="x2", time=at(2),
                   benefit={"action": "sanctioned"}),
        event_dict("case.status-changed", dict(jc, status="afgjort", previous_status="oplyst"),
                   event_id="x3", time=at(3)),
        event_dict("citizen.moved", event_id="x4", time="2026-11-05T10:00:00Z",
                   move={"within_municipality": False}),
    ]
    minimal = event_dict("case.opened", case("SP-9", "handicap-psykiatri", kle="27.12.00"),
                         event_id="x5", time=at(4))
    minimal["data"]["case"].pop("sensitivity", None)
    minimal["data"]["parties"] = [{"citizen": CITIZEN_A}]
    extras.append(minimal)
    return payloads + [orjson.dumps(raw) for raw in extras]


def run(decode: Any, payloads: list[bytes]) -> tuple[list[Any], dict[str, Any]]:
    states: dict[str, CitizenState] = {}
    notifications = []
    matcher = real_matcher()
    for payload in payloads:
        event = decode(payload)
        for party in event.data.parties:
            outcome = process(states.get(party.citizen), event, party.citizen, matcher, CREATED)
            states[party.citizen] = outcome.state
            notifications += outcome.notifications
    return notifications, {k: s.to_json() for k, s in states.items()}


def test_same_notifications_and_state_as_the_pydantic_model() -> None:
    """Over the demo scenario and more, both decodes give identical notifications and states."""
    payloads = scenario_payloads()
    for payload in payloads:  # every one of them valid for the model
        CaseEvent.model_validate_json(payload)
    fast = run(decode_validated, payloads)
    assert fast[0], "the scenario notifies someone"
    assert fast == run(CaseEvent.model_validate_json, payloads)


def test_fields_the_engine_reads_match_the_model() -> None:
    """Case defaults, parties, extras, department and time read as the model reads them."""
    for payload in scenario_payloads():
        fast, model = decode_validated(payload), CaseEvent.model_validate_json(payload)
        assert (fast.id, fast.source, fast.type, fast.subject, fast.department) == (
            model.id, model.source, model.type, model.subject, model.department)
        assert fast.time == model.time and fast.time.isoformat() == model.time.isoformat()
        assert [(p.citizen, p.role) for p in fast.data.parties] == [
            (p.citizen, p.role) for p in model.data.parties]
        assert fast.data.model_extra == model.data.model_extra
        if model.data.case is None:
            assert fast.data.case is None
        else:
            assert vars(fast.data.case) == model.data.case.model_dump()


@pytest.mark.parametrize("change", [
    {"time": "2026-11-02T08:50:00"},  # no UTC offset
    {"time": 1790000000},
    {"data": {"case": None}},  # no parties
])
def test_what_it_cannot_read_goes_through_the_model(change: dict[str, Any]) -> None:
    """A payload it cannot read is decoded (or refused) by the pydantic model."""
    raw = dict(event_dict("citizen.moved", event_id="y1"), **change)
    payload = orjson.dumps(raw)
    try:
        expected: Any = CaseEvent.model_validate_json(payload)
    except ValidationError:
        with pytest.raises(ValidationError):
            decode_validated(payload)
    else:
        assert decode_validated(payload) == expected


def test_decode_trusted_agrees_and_refuses_what_is_no_event() -> None:
    """decode_trusted gives decode_validated's event, and a Rejection (never an exception) else."""
    for payload in scenario_payloads():
        fast = decode_trusted(payload)
        assert not isinstance(fast, Rejection)
        assert vars(fast) == vars(decode_validated(payload))
    payload = scenario_payloads()[0]
    cases = {
        payload[:40]: RejectReason.NOT_JSON,
        b"[" * 40 + b"]" * 40: RejectReason.TOO_DEEP,
        orjson.dumps({"id": "x"}): RejectReason.MISSING_FIELD,
    }
    for bad, reason in cases.items():
        result = decode_trusted(bad)
        assert isinstance(result, Rejection) and result.reason == reason

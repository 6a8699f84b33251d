"""steps.intake and steps.correlate never raise: any bytes give sends or dead letters."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisering.dev.scenario import demo_scenario
from advisering.edge.prepare import prepare_event
from advisering.engine.matcher import Matcher
from advisering.engine.overview import CitizenState
from advisering.events import CaseEvent, RejectReason, encode_event
from advisering.worker import steps
from tests.unit.builders import CREATED, DEMO_GRANTS, KEY, VOCABULARY, real_matcher

TOPIC = "advisering.case-events"
REASONS = {reason.value for reason in RejectReason}
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@cache
def real_events() -> tuple[bytes, ...]:
    """The demo scenario's events as they sit on the topic (pseudonymised, encoded)."""
    events = []
    for raw in (raw for wave in demo_scenario() for raw in wave):
        event = prepare_event(raw, KEY, VOCABULARY)
        assert isinstance(event, CaseEvent)
        events.append(encode_event(event))
    return tuple(events)


@cache
def matcher() -> Matcher:
    return real_matcher()


def deep(depth: int, kind: str) -> bytes:
    """JSON text ``depth`` levels deep: arrays, objects or a valid event with a deep field."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    event = orjson.loads(real_events()[0])
    event["data"]["note"] = "X"
    head, tail = orjson.dumps(event).split(b'"X"')
    return head + b"[" * depth + b"]" * depth + tail


def intake(payload: bytes | None) -> steps.Outbox:
    """steps.intake, checked: the event is routed or dead-lettered, never dropped."""
    box = steps.intake(payload, VOCABULARY, grants=DEMO_GRANTS, topic=TOPIC, partition=0,
                       offset=1, now=CREATED)
    assert isinstance(box, steps.Outbox)
    assert bool(box.citizen_events) != bool(box.dead_letters)
    for _, value in box.dead_letters:
        assert orjson.loads(value)["reason"] in REASONS
    return box


def correlate(payload: bytes, state: CitizenState | None = None) -> steps.Outbox:
    """steps.correlate, checked: a state comes back, and a bad record is a dead letter."""
    new, box = steps.correlate("ps1-" + "a" * 52, payload, state, matcher(), topic="t",
                               partition=0, offset=2, now=CREATED)
    assert isinstance(new, CitizenState) and isinstance(box, steps.Outbox)
    for _, value in box.dead_letters:
        assert orjson.loads(value)["reason"] in REASONS
    return box


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40,
)


@SETTINGS
@given(json_values)
def test_random_json_values(value: Any) -> None:
    """Any JSON value (nested) is dead-lettered by intake and by correlate, without raising."""
    payload = orjson.dumps(value)
    assert intake(payload).dead_letters
    assert correlate(payload).dead_letters


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes(payload: bytes) -> None:
    """Random bytes are dead-lettered by both steps, without raising."""
    assert intake(payload).dead_letters
    assert correlate(payload).dead_letters


def test_truncated_real_events_at_every_length() -> None:
    """Every real event cut at every length is dead-lettered, never raised on; whole, it passes."""
    for payload in real_events():
        assert intake(payload).citizen_events
        assert not correlate(payload).dead_letters
        for cut in range(len(payload)):
            assert intake(payload[:cut]).dead_letters
            assert correlate(payload[:cut]).dead_letters


@SETTINGS
@given(st.data())
def test_real_events_with_a_field_replaced_by_anything(data: st.DataObject) -> None:
    """A real event with any field (top level or in data) replaced by a random value: no raise."""
    event = orjson.loads(data.draw(st.sampled_from(real_events())))
    target = data.draw(st.sampled_from([event, event["data"]]))
    key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
    target[key] = data.draw(json_values)
    payload = orjson.dumps(event)
    intake(payload)
    correlate(payload)
    correlate(payload, CitizenState())


def test_deep_json_is_too_deep_for_both_steps() -> None:
    """Arrays, objects and a deep field 33 to 100,000 levels deep: too_deep, no RecursionError."""
    for depth in (33, 255, 300, 1000, 1025, 100_000):
        for kind in ("array", "object", "event"):
            payload = deep(depth, kind)
            for box in (intake(payload), correlate(payload)):
                [(_, value)] = box.dead_letters
                letter = orjson.loads(value)
                assert letter["reason"] == "too_deep"
                assert len(letter["payload"]) <= 16_384


def test_state_is_kept_when_correlate_refuses() -> None:
    """A record correlate cannot decode leaves the citizen's state as it was."""
    state = CitizenState()
    new, box = steps.correlate("ps1-" + "a" * 52, b"{oops", state, matcher(), now=CREATED)
    assert new is state and box.dead_letters and not box.notifications


def test_an_engine_bug_is_a_processing_error_dead_letter(monkeypatch: Any) -> None:
    """When the engine raises (a bug), correlate keeps the state and dead-letters the event."""
    def broken(*_args: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(steps, "process", broken)
    state = CitizenState()
    new, box = steps.correlate("ps1-" + "a" * 52, real_events()[0], state, matcher(),
                               now=CREATED)
    assert new is state
    [(_, value)] = box.dead_letters
    assert orjson.loads(value)["reason"] == "processing_error"


def test_a_failing_dead_letter_still_leaves_a_record(monkeypatch: Any) -> None:
    """If even the dead letter fails, intake still returns a bare processing_error record."""
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(steps, "decode_event", broken)
    monkeypatch.setattr(steps, "dead_letter", broken)
    box = steps.intake(real_events()[0], VOCABULARY, grants=DEMO_GRANTS, topic=TOPIC, partition=3,
                       offset=9, now=CREATED)
    [(_, value)] = box.dead_letters
    letter = orjson.loads(value)
    assert (letter["reason"], letter["partition"], letter["offset"]) == ("processing_error", 3, 9)
    assert letter["payload"] == ""

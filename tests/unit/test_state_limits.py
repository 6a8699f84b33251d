"""Bounded state per citizen: each limit holds at its value and refuses one past it."""

from __future__ import annotations

import re
from typing import Any, get_args

import orjson
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from advisering.engine.evaluate import notification_id, process
from advisering.engine.limits import DEFAULT_LIMITS, StateLimits
from advisering.engine.overview import (
    CLOSED_TOMBSTONE_SECONDS,
    SENT_MEMORY_SECONDS,
    CitizenState,
    OpenCase,
    memory_key,
    seen_key,
    throttle_key,
    tombstone_key,
)
from advisering.events import (
    _NAME,
    KLE_PATTERN,
    SDI_STATUSES,
    CaseEvent,
    CaseRef,
    Sensitivity,
    encode_event,
)
from advisering.privacy import find_cprs
from advisering.settings import Settings
from advisering.worker import steps, tally
from advisering.worker.agent import encode_state
from tests.unit.builders import CITIZEN_A, CREATED, at, case, event, real_matcher, state_with

MATCHER = real_matcher()
TOPIC = "advisering-worker-citizen-events"
BF = case("DUBU-1", "boern-familie", kle="34.15.00", caseworker="bf-0001")
SANCTION = {"benefit": {"action": "sanctioned"}}


def limit_count(limit: str) -> float:
    return REGISTRY.get_sample_value("advisering_citizen_state_limit_total",
                                     {"limit": limit}) or 0.0


def correlate(state: CitizenState | None, ev: CaseEvent,
              limits: StateLimits) -> tuple[CitizenState, steps.Outbox]:
    """The step, then its counts recorded as the agent records them."""
    new, box = steps.correlate(CITIZEN_A, encode_event(ev), state, MATCHER, limits,
                               topic=TOPIC, partition=3, offset=42, now=CREATED)
    tally.record(box.counts)
    return new, box


def assert_refused(before: CitizenState, ev: CaseEvent, limits: StateLimits,
                   limit: str) -> dict[str, Any]:
    """``ev`` is refused for ``limit``: state as it was, nothing sent, one counted dead letter."""
    snapshot = orjson.dumps(before.to_json())
    counted = limit_count(limit)
    state, box = correlate(before, ev, limits)
    assert state is before
    assert orjson.dumps(state.to_json()) == snapshot
    assert box.notifications == box.audit == box.citizen_events == []
    [(key, raw)] = box.dead_letters
    letter = orjson.loads(raw)
    assert key == ev.source.encode()
    assert letter["reason"] == "citizen_state_limit"
    assert limit in letter["message"]
    assert CITIZEN_A not in letter["message"]  # a prefix of the pseudonym only
    assert (letter["event_id"], letter["topic"], letter["partition"], letter["offset"]) == (
        ev.id, TOPIC, 3, 42)
    assert limit_count(limit) == counted + 1
    return letter


def accepted(state: CitizenState | None, ev: CaseEvent, limits: StateLimits) -> CitizenState:
    new, box = correlate(state, ev, limits)
    assert box.dead_letters == []
    assert new is not state
    return new


def opened(n: int, hours: float = 0.0) -> CaseEvent:
    return event("case.opened", case(f"MOM-{n}", "jobcenter"), event_id=f"o-{n}",
                 time=at(hours + n / 1000))


def test_settings_defaults_are_the_engine_defaults() -> None:
    """The ADVISERING_CITIZEN_* defaults build exactly the engine's default limits."""
    assert steps.state_limits(Settings()) == DEFAULT_LIMITS == StateLimits()


def test_limits_below_one_are_refused() -> None:
    """A limit of zero is a configuration error, in the engine and in the settings."""
    with pytest.raises(ValueError, match="max_open_cases"):
        StateLimits(max_open_cases=0)
    with pytest.raises(ValueError, match="citizen_max_seen_events"):
        Settings(citizen_max_seen_events=0)


def test_open_cases_at_the_limit_accepted_one_more_refused() -> None:
    """The 3rd open case is accepted at max_open_cases=3; a 4th is a dead letter, state kept."""
    limits = StateLimits(max_open_cases=3)
    state = None
    for n in range(3):
        state = accepted(state, opened(n), limits)
    assert state is not None and len(state.cases) == 3
    letter = assert_refused(state, opened(3), limits, "max_open_cases")
    assert letter["path"] == "data.case.id"
    # News of a case already open does not grow the map: still accepted.
    again = event("document.added", case("MOM-1", "jobcenter"), event_id="d", time=at(1))
    assert len(accepted(state, again, limits).cases) == 3


def test_refused_event_sends_no_notification() -> None:
    """An event past a limit that a rule would fire on notifies nobody and is not remembered."""
    limits = StateLimits(max_open_cases=2)
    state = state_with(BF, case("MOM-1", "jobcenter"))
    trigger = event("benefit.changed", case("YD-9", "ydelse"), event_id="s", **SANCTION)
    assert process(state, trigger, CITIZEN_A, MATCHER, CREATED).notifications  # fires unlimited
    outcome = process(state, trigger, CITIZEN_A, MATCHER, CREATED, limits)
    assert outcome.limit == ("max_open_cases", 2)
    assert outcome.notifications == [] and outcome.state is state
    assert seen_key(trigger.source, trigger.id) not in state.seen


def test_seen_events_at_the_limit_accepted_one_more_refused() -> None:
    """At max_seen_events=3 three events are remembered; a 4th new event is refused."""
    limits = StateLimits(max_seen_events=3)
    state = accepted(None, opened(1), limits)
    for n in range(2):
        doc = event("document.added", case("MOM-1", "jobcenter"), event_id=f"d{n}", time=at(n))
        state = accepted(state, doc, limits)
    assert len(state.seen) == 3
    late = event("document.added", case("MOM-1", "jobcenter"), event_id="d9", time=at(5))
    assert assert_refused(state, late, limits, "max_seen_events")["path"] == "id"
    # A re-delivered event is still a duplicate (no growth), not a limit.
    same, box = correlate(state, opened(1), limits)
    assert same is state and box.dead_letters == []


def test_seen_events_older_than_the_window_are_pruned_before_the_limit() -> None:
    """A full dedup memory whose oldest entry left the 14-day window takes a new event."""
    limits = StateLimits(max_seen_events=2)
    state = accepted(None, opened(1), limits)
    state = accepted(state, event("document.added", case("MOM-1", "jobcenter"),
                                  event_id="d1", time=at(1)), limits)
    later = at(SENT_MEMORY_SECONDS / 3600 + 0.5)  # 14 days after the first, not the second
    new = accepted(state, event("document.added", case("MOM-1", "jobcenter"),
                                event_id="d2", time=later), limits)
    assert len(new.seen) == 2
    assert seen_key("momentum", "o-1") not in new.seen


def test_tombstones_at_the_limit_accepted_one_more_refused() -> None:
    """At max_tombstones=2 two closes leave tombstones; a third close is refused, case open."""
    limits = StateLimits(max_tombstones=2)
    state = None
    for n in range(3):
        state = accepted(state, opened(n), limits)
    for n in range(2):
        close = event("case.closed", case(f"MOM-{n}", "jobcenter", status="afsluttet"),
                      event_id=f"c-{n}", time=at(1 + n))
        state = accepted(state, close, limits)
    assert state is not None and len(state.closed) == 2
    third = event("case.closed", case("MOM-2", "jobcenter", status="afsluttet"),
                  event_id="c-2", time=at(3))
    assert_refused(state, third, limits, "max_tombstones")
    assert "MOM-2" in state.cases


def test_expired_tombstones_are_pruned_before_the_limit() -> None:
    """A full tombstone map whose oldest entry is past 30 days takes a new close."""
    limits = StateLimits(max_tombstones=1)
    state = accepted(None, event("case.closed", case("OLD", "jobcenter", status="afsluttet"),
                                 event_id="c-old", time=at(0)), limits)
    later = at(CLOSED_TOMBSTONE_SECONDS / 3600 + 1)
    new = accepted(state, event("case.closed", case("NEW", "jobcenter", status="afsluttet"),
                                event_id="c-new", time=later), limits)
    assert list(new.closed) == [tombstone_key("NEW")]


def test_a_state_over_a_lowered_limit_can_shrink_but_not_grow() -> None:
    """Stored over a limit lowered since: a close is accepted, a new case is refused."""
    state = state_with(*(case(f"MOM-{n}", "jobcenter") for n in range(3)))
    limits = StateLimits(max_open_cases=1)
    close = event("case.closed", case("MOM-0", "jobcenter", status="afsluttet"),
                  event_id="c", time=at(1))
    assert len(accepted(state, close, limits).cases) == 2
    assert_refused(state, opened(7, hours=2), limits, "max_open_cases")


def sanction_state(caseworkers: int) -> CitizenState:
    return state_with(*(case(f"DUBU-{n}", "boern-familie", kle="34.15.00",
                             caseworker=f"bf-{n:04d}") for n in range(caseworkers)))


def test_sent_ids_past_their_limit_forget_the_oldest() -> None:
    """Past max_sent_notifications the oldest sent ids go; the notifications still go out."""
    limits = StateLimits(max_sent_notifications=2)
    state = sanction_state(3)
    trigger = event("benefit.changed", case("YD-1", "ydelse"), event_id="s1", **SANCTION)
    new, box = correlate(state, trigger, limits)
    assert len(box.notifications) == 3 and box.dead_letters == []
    ids = [orjson.loads(value)["id"] for _, value in box.notifications]
    assert list(new.sent) == ids[1:]
    assert REGISTRY.get_sample_value("advisering_citizen_state_trimmed_total")


def test_throttle_windows_past_their_limit_forget_the_nearest_to_end() -> None:
    """Past max_throttle_windows the windows that end first go; the rest are kept."""
    limits = StateLimits(max_throttle_windows=2)
    state = sanction_state(3)
    state.throttle = {throttle_key("old-rule", "x"): 1.0e12}  # ends long after the others
    trigger = event("benefit.changed", case("YD-1", "ydelse"), event_id="s1", **SANCTION)
    outcome = process(state, trigger, CITIZEN_A, MATCHER, CREATED, limits)
    assert len(outcome.notifications) == 3
    assert len(outcome.state.throttle) == 2
    assert throttle_key("old-rule", "x") in outcome.state.throttle
    assert outcome.forgotten == 2


def test_memory_keys_are_short_digit_free_and_distinct() -> None:
    """Dedup, tombstone and throttle keys: 24 letters, no digit, distinct per input."""
    keys = {seen_key("momentum", "a" * 128), seen_key("momentum", "a" * 127),
            tombstone_key("\x01" * 128), throttle_key("regel", "unit:x"), memory_key("")}
    assert len(keys) == 5
    assert all(re.fullmatch(r"[a-p]{24}", key) for key in keys)


def name_max() -> int:
    """The longest department, unit, caseworker or source _NAME allows."""
    found = re.search(r"\{0,(\d+)\}\$$", _NAME)
    assert found, _NAME
    return int(found.group(1)) + 1


def max_length(model: type[CaseRef] | type[CaseEvent], name: str) -> int:
    [limit] = [m.max_length for m in model.model_fields[name].metadata
               if getattr(m, "max_length", None)]
    return int(limit)


# Control characters JSON escapes as \u00XX: six bytes per character, the most any takes.
_WIDE = [chr(c) for c in range(1, 32) if chr(c) not in "\b\t\n\f\r"]


def widest(length: int, n: int) -> str:
    """A distinct string of ``length`` characters that each encode to six JSON bytes."""
    base = len(_WIDE)
    assert n < base ** 3
    head = _WIDE[n % base] + _WIDE[n // base % base] + _WIDE[n // base ** 2]
    return (head + _WIDE[0] * length)[:length]


def worst_case_state(limits: StateLimits) -> CitizenState:
    """Every map at its limit, every id, source, unit and caseworker at its longest."""
    name = name_max()
    case_id_max = max_length(CaseRef, "id")
    at_ms = 4_102_444_800.0  # 2100-01-01: 13-digit milliseconds, like every stored time
    longest = {"status": max(SDI_STATUSES, key=len),
               "sensitivity": max(get_args(Sensitivity), key=len)}
    kle = "99.99.99"
    assert KLE_PATTERN.match(kle)
    cases = {}
    for n in range(limits.max_open_cases):
        case_id = widest(case_id_max, n)
        cases[case_id] = OpenCase(case_id, "s" * name, "d" * name, "u" * name, "c" * name, kle,
                                  longest["status"], longest["sensitivity"], at_ms)
    event_id_max = max_length(CaseEvent, "id")
    ev = event("case.opened", case("X", "jobcenter"))
    return CitizenState(
        cases=cases,
        closed={tombstone_key(widest(case_id_max, n)): at_ms
                for n in range(limits.max_tombstones)},
        sent={notification_id("r" * 81, ev, CITIZEN_A, "c" * name, str(n)): at_ms
              for n in range(limits.max_sent_notifications)},
        throttle={throttle_key("r" * 81, f"unit:{n}"): at_ms
                  for n in range(limits.max_throttle_windows)},
        newest=at_ms,
        seen={seen_key("s" * name, widest(event_id_max, n)): at_ms
              for n in range(limits.max_seen_events)},
    )


def test_worst_case_state_at_default_limits_encodes_to_at_most_256_kib() -> None:
    """Every map full at the default limits, every string at its longest: changelog <= 256 KiB."""
    state = worst_case_state(DEFAULT_LIMITS)
    assert (len(state.cases), len(state.closed), len(state.seen), len(state.sent),
            len(state.throttle)) == (
        DEFAULT_LIMITS.max_open_cases, DEFAULT_LIMITS.max_tombstones,
        DEFAULT_LIMITS.max_seen_events, DEFAULT_LIMITS.max_sent_notifications,
        DEFAULT_LIMITS.max_throttle_windows)
    encoded = encode_state(state)
    # The ids really are at their widest: six bytes per character in the record.
    assert encoded.count(b"\\u00") >= DEFAULT_LIMITS.max_open_cases * max_length(CaseRef, "id")
    assert len(encoded) <= 256 * 1024
    assert len(encoded) < Settings().citizen_max_state_bytes
    assert find_cprs(encoded.decode()) == []
    assert CitizenState.from_json(orjson.loads(encoded)) == state


def test_too_large_finds_states_over_the_cap_only() -> None:
    """steps.too_large names the citizens whose encoded state passes the cap; tombstones pass."""
    encoded: dict[bytes, bytes | None] = {b"ps1-a": b"x" * 1024, b"ps1-b": b"x" * 1025,
                                          b"ps1-c": None}
    assert steps.too_large(encoded, 1024) == {b"ps1-b"}


def test_state_size_letter_is_a_citizen_state_limit_dead_letter() -> None:
    """The save-time cap's dead letter: reason citizen_state_limit, limit max_state_bytes."""
    ev = opened(1)
    box = steps.state_size_letter(encode_event(ev), CITIZEN_A.encode(), 1024, topic=TOPIC,
                                  partition=1, offset=7, now=CREATED)
    [(key, raw)] = box.dead_letters
    letter = orjson.loads(raw)
    assert (key, letter["reason"], letter["event_id"]) == (b"momentum", "citizen_state_limit",
                                                            ev.id)
    assert "max_state_bytes (1024)" in letter["message"]


def test_a_flood_of_refusals_is_logged_once_per_interval_with_its_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refusals for one citizen and limit: one log line per interval, counting those between."""
    clock = [1000.0]
    monkeypatch.setattr(tally.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(tally, "_limit_logged", {})
    limits = StateLimits(max_open_cases=1)
    state = accepted(None, opened(0), limits)
    with capture_logs() as logs:
        for n in range(1, 4):
            assert_refused(state, opened(n), limits, "max_open_cases")
        clock[0] += tally.LIMIT_LOG_SECONDS
        assert_refused(state, opened(9), limits, "max_open_cases")
    lines = [line for line in logs if line["event"] == "citizen_state_limit"]
    assert [line["refused"] for line in lines] == [1, 3]
    assert {line["citizen"] for line in lines} == {CITIZEN_A[:12]}
    assert all(CITIZEN_A not in str(line) for line in logs)


def test_the_step_counts_a_refusal_and_only_the_agent_records_it() -> None:
    """correlate itself touches no metric: the refusal is in its counts until tally records it."""
    limits = StateLimits(max_open_cases=1)
    state = accepted(None, opened(0), limits)
    counted = limit_count("max_open_cases")
    _, box = steps.correlate(CITIZEN_A, encode_event(opened(1)), state, MATCHER, limits,
                             topic=TOPIC, partition=3, offset=42, now=CREATED)
    assert limit_count("max_open_cases") == counted
    assert [r.limit for r in box.counts.state_limits] == ["max_open_cases"]
    assert box.counts.dead_letters == ["citizen_state_limit"]
    tally.record(box.counts)
    assert limit_count("max_open_cases") == counted + 1

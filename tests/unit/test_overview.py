"""The citizen overview: open cases follow the events, late events never corrupt it."""

from __future__ import annotations

import datetime as dt

import orjson

from advisering.engine.evaluate import process
from advisering.engine.overview import (
    SENT_MEMORY_SECONDS,
    CitizenState,
    OpenCase,
    apply_event,
    prune,
    tombstone_key,
    with_case,
)
from advisering.privacy import find_cprs
from tests.unit.builders import (
    BASE_TIME,
    CREATED,
    at,
    case,
    event,
    real_matcher,
    state_with,
)

JC = case("MOM-1", "jobcenter", kle="32.24.06", status="oplyst", unit="jc-nord",
          caseworker="jc-4711", sensitivity="fortrolige")


def opened_state() -> CitizenState:
    state = CitizenState()
    assert apply_event(state, event("case.opened", JC, event_id="o1", source="momentum"))
    return state


def test_case_opened_adds_open_case_with_all_fields() -> None:
    """case.opened records id, source, department, unit, caseworker, KLE, status, sensitivity."""
    state = opened_state()
    assert state.cases == {
        "MOM-1": OpenCase(
            id="MOM-1", source="momentum", department="jobcenter", unit="jc-nord",
            caseworker="jc-4711", kle="32.24.06", status="oplyst", sensitivity="fortrolige",
            last_seen=BASE_TIME.timestamp(),
        )
    }
    assert state.newest == BASE_TIME.timestamp()


def test_process_adds_case_through_the_engine() -> None:
    """process() with no prior state returns a new state holding the opened case."""
    outcome = process(None, event("case.opened", JC), "ps1-x", real_matcher(), CREATED)
    assert list(outcome.state.cases) == ["MOM-1"]
    assert not outcome.stale


def test_status_changed_updates_case() -> None:
    """case.status-changed replaces the status and moves last_seen."""
    state = opened_state()
    changed = {**JC, "status": "afgjort", "previous_status": "oplyst"}
    assert apply_event(state, event("case.status-changed", changed, event_id="s1", time=at(1)))
    assert state.cases["MOM-1"].status == "afgjort"
    assert state.cases["MOM-1"].last_seen == (BASE_TIME.timestamp() + 3600)


def test_reassigned_changes_caseworker() -> None:
    """case.reassigned records the new caseworker."""
    state = opened_state()
    moved = {**JC, "caseworker": "jc-0815"}
    assert apply_event(state, event("case.reassigned", moved, event_id="r1", time=at(1)))
    assert state.cases["MOM-1"].caseworker == "jc-0815"


def test_sensitivity_change_is_recorded() -> None:
    """A later event with a new sensitivity updates the case's sensitivity."""
    state = opened_state()
    sensitive = {**JC, "sensitivity": "foelsomme"}
    assert apply_event(state, event("document.added", sensitive, event_id="d1", time=at(1)))
    assert state.cases["MOM-1"].sensitivity == "foelsomme"


def test_case_closed_removes_case() -> None:
    """case.closed forgets the case and keeps only a tombstone time."""
    state = opened_state()
    assert apply_event(state, event("case.closed", {**JC, "status": "afsluttet"},
                                    event_id="c1", time=at(2)))
    assert state.cases == {}
    assert state.closed == {tombstone_key("MOM-1"): BASE_TIME.timestamp() + 7200}


def test_status_afsluttet_removes_case() -> None:
    """A status change to afsluttet closes the case like case.closed."""
    state = opened_state()
    done = {**JC, "status": "afsluttet", "previous_status": "afgjort"}
    assert apply_event(state, event("case.status-changed", done, event_id="s2", time=at(2)))
    assert "MOM-1" not in state.cases


def test_party_removed_removes_case_for_that_citizen() -> None:
    """case.party-removed drops the case from the removed citizen's overview only."""
    state = state_with(JC, case("DUBU-1", "boern-familie", kle="34.15.00"))
    assert apply_event(state, event("case.party-removed", JC, event_id="p1", time=at(1)))
    assert list(state.cases) == ["DUBU-1"]


def test_citizen_event_leaves_cases_alone() -> None:
    """A citizen.* event changes no case but advances newest."""
    state = opened_state()
    before = dict(state.cases)
    assert apply_event(state, event("citizen.moved", source="cpr", event_id="m1", time=at(5)))
    assert state.cases == before
    assert state.newest == BASE_TIME.timestamp() + 5 * 3600


def test_older_event_does_not_overwrite_newer() -> None:
    """An event older than what is known of the case is stale and changes nothing."""
    state = opened_state()
    newer = {**JC, "status": "afgjort", "caseworker": "jc-0815"}
    assert apply_event(state, event("case.status-changed", newer, event_id="n", time=at(3)))
    kept = state.cases["MOM-1"]
    older = {**JC, "status": "oplyst", "caseworker": "jc-0001"}
    assert not apply_event(state, event("case.reassigned", older, event_id="o", time=at(1)))
    assert state.cases["MOM-1"] == kept


def test_process_marks_older_event_stale() -> None:
    """process() reports a late event as stale and keeps the newer case data."""
    first = process(None, event("case.status-changed", {**JC, "status": "afgjort"},
                                event_id="n", time=at(3)), "ps1-x", real_matcher(), CREATED)
    late = process(first.state, event("case.opened", JC, event_id="o", time=at(0)),
                   "ps1-x", real_matcher(), CREATED)
    assert late.stale
    assert late.state.cases["MOM-1"].status == "afgjort"


def test_older_event_does_not_resurrect_closed_case() -> None:
    """After case.closed, a late event from before the closing does not reopen the case."""
    state = opened_state()
    assert apply_event(state, event("case.closed", {**JC, "status": "afsluttet"},
                                    event_id="c", time=at(3)))
    assert not apply_event(state, event("document.added", JC, event_id="late", time=at(1)))
    assert state.cases == {}
    assert tombstone_key("MOM-1") in state.closed


def test_newer_event_reopens_closed_case() -> None:
    """An event after the closing reopens the case and drops its tombstone."""
    state = opened_state()
    assert apply_event(state, event("case.closed", {**JC, "status": "afsluttet"},
                                    event_id="c", time=at(3)))
    assert apply_event(state, event("case.opened", JC, event_id="again", time=at(4)))
    assert "MOM-1" in state.cases
    assert tombstone_key("MOM-1") not in state.closed


def test_duplicate_event_gives_no_second_notification() -> None:
    """A re-delivered event is counted as a duplicate and notifies nobody again."""
    matcher = real_matcher()
    state = state_with(case("DUBU-1", "boern-familie", kle="34.15.00", caseworker="bf-0042"))
    sanction = event("benefit.changed", JC, event_id="ev-dup", benefit={"action": "sanctioned"})
    first = process(state, sanction, "ps1-x", matcher, CREATED)
    assert len(first.notifications) == 1
    again = process(first.state, sanction, "ps1-x", matcher, CREATED)
    assert again.notifications == []
    assert again.duplicates == 1
    assert again.throttled == []


def test_process_does_not_mutate_given_state() -> None:
    """process() works on a copy; the caller's state is unchanged."""
    state = opened_state()
    snapshot = state.to_json()
    process(state, event("case.closed", {**JC, "status": "afsluttet"}, event_id="c",
                         time=at(1)), "ps1-x", real_matcher(), CREATED)
    assert state.to_json() == snapshot


def test_state_json_round_trip() -> None:
    """CitizenState survives to_json, JSON bytes and from_json unchanged."""
    matcher = real_matcher()
    state = state_with(case("DUBU-1", "boern-familie", kle="34.15.00"),
                       case("HP-1", "handicap-psykiatri", kle="27.24", caseworker=None))
    outcome = process(state, event("benefit.changed", {**case("YD-1", "ydelse")},
                                   benefit={"action": "stopped"}), "ps1-x", matcher, CREATED)
    assert outcome.notifications
    closed = process(outcome.state, event("case.closed", case("HP-1", "handicap-psykiatri",
                     kle="27.24", status="afsluttet"), event_id="c", time=at(1)),
                     "ps1-x", matcher, CREATED).state
    assert closed.cases and closed.closed and closed.sent and closed.throttle
    restored = CitizenState.from_json(orjson.loads(orjson.dumps(closed.to_json())))
    assert restored == closed


def test_stored_state_holds_no_cpr_shaped_number() -> None:
    """Event times whose epoch seconds read as a CPR number are stored as 13-digit milliseconds."""
    cpr_like = dt.datetime.fromtimestamp(1801980660, dt.UTC)  # 18.01.98-0660 in seconds
    assert find_cprs(str(int(cpr_like.timestamp())))
    outcome = process(None, event("case.opened", JC, event_id="o1", time=cpr_like.isoformat()),
                      "ps1-x", real_matcher(), CREATED)
    text = orjson.dumps(outcome.state.to_json()).decode()
    assert "1801980660000" in text
    assert find_cprs(text) == []
    assert CitizenState.from_json(orjson.loads(text)) == outcome.state


def test_from_json_of_nothing_is_empty() -> None:
    """from_json(None) and from_json({}) give an empty state."""
    assert CitizenState.from_json(None).is_empty()
    assert CitizenState.from_json({}) == CitizenState()


def test_prune_forgets_old_sent_ids() -> None:
    """Sent ids older than the memory window are forgotten; recent ones kept."""
    state = CitizenState(sent={"old": 0.0, "new": SENT_MEMORY_SECONDS + 10.0},
                         newest=SENT_MEMORY_SECONDS + 20.0)
    prune(state)
    assert state.sent == {"new": SENT_MEMORY_SECONDS + 10.0}


def test_with_case_copies() -> None:
    """with_case returns a new state with the case; the original is unchanged."""
    state = CitizenState()
    open_case = OpenCase("X-1", "s", "skole", "u", None, "17.01", "oplyst", "fortrolige", 5.0)
    new = with_case(state, open_case)
    assert new.cases == {"X-1": open_case}
    assert new.newest == 5.0
    assert state.is_empty()

"""explain (behind `rules test`) and the live engine's process give the same answer."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from advisering.dev.simulator import CET, Municipality, simulate
from advisering.edge.prepare import prepare_event
from advisering.engine.evaluate import process
from advisering.engine.explain import explain
from advisering.engine.matcher import Matcher, naive_matching
from advisering.engine.overview import CitizenState
from advisering.engine.rules import load_rules
from advisering.events import CaseEvent, Rejection
from advisering.kafka.topics import load_vocabulary

ROOT = Path(__file__).resolve().parents[2]
START = dt.datetime(2026, 11, 1, tzinfo=CET)
# Verdicts that say a rule told nobody: never given to a rule that fired for the same event.
SILENT = {"condition", "no_target", "suppressed"}
REACHED = {"fired", "throttled", "duplicate"}


def simulated_events() -> list[CaseEvent]:
    """Thousands of simulated events, in time order, through the publishing edge."""
    vocabulary = load_vocabulary(ROOT / "topics")
    events = []
    for raw in simulate(Municipality(seed=23, citizens=8_000, days=30, start=START)):
        event = prepare_event(raw, b"k" * 32, vocabulary)
        assert not isinstance(event, Rejection)
        events.append(event)
    return events


def agreement(matcher: Matcher, events: list[CaseEvent]) -> Counter[str]:
    """Run process and explain side by side, assert they agree; count explain's verdicts."""
    engine: dict[str, CitizenState] = {}
    explained: dict[str, CitizenState] = {}
    kinds: Counter[str] = Counter()
    for event in events:
        for citizen in dict.fromkeys(party.citizen for party in event.data.parties):
            outcome = process(engine.get(citizen), event, citizen, matcher, "now")
            explanation = explain(explained.get(citizen), event, citizen, matcher, "now")
            engine[citizen], explained[citizen] = outcome.state, explanation.outcome.state
            assert explanation.outcome.notifications == outcome.notifications
            assert explanation.outcome.state.to_json() == outcome.state.to_json()
            fired = {n.rule for n in outcome.notifications}
            assert {v.rule for v in explanation.fired} == fired
            for verdict in explanation.fired:
                assert list(verdict.notifications) == [
                    n for n in outcome.notifications if n.rule == verdict.rule]
            assert not [v for v in explanation.almost if v.rule in fired and v.verdict in SILENT]
            per_rule: dict[str, set[str]] = {}
            for v in explanation.verdicts:
                per_rule.setdefault(v.rule, set()).add(v.verdict)
            # A rule told nobody for one reason, or reached its targets (some held back).
            assert all(len(k) == 1 if k & SILENT else k <= REACHED for k in per_rule.values())
            # Every rule of the type has a verdict; those past the `when` conditions are the
            # ones the full check (without the index) finds.
            of_type = [c.rule.id for c in matcher.compiled if event.type in c.rule.when.type]
            assert list(dict.fromkeys(v.rule for v in explanation.verdicts)) == of_type
            assert {v.rule for v in explanation.verdicts if v.verdict != "condition"} == {
                c.rule.id for c in naive_matching(matcher.compiled, event)}
            for kind, engine_says in (("throttled", outcome.throttled),
                                      ("suppressed", outcome.suppressed)):
                assert Counter(v.rule for v in explanation.verdicts if v.verdict == kind) \
                    == Counter(engine_says)
            kinds.update(v.verdict for v in explanation.verdicts)
    return kinds


def test_explain_reports_exactly_what_process_does_on_the_simulation() -> None:
    """On every simulated event, explain fires the rules process fires, for the same targets."""
    rules = load_rules(ROOT / "rules", load_vocabulary(ROOT / "topics"))
    events = simulated_events()
    assert len(events) > 4_000
    matcher = Matcher(rules)
    shipped = agreement(matcher, events)
    assert shipped["fired"] > 50
    assert shipped["condition"] > 1_000
    assert shipped["no_target"] > 50
    # Each event sent twice under two ids: the second copy meets the rules' throttles.
    twice = [copy for event in events
             for copy in (event, event.model_copy(update={"id": event.id + "-again"}))]
    repeated = agreement(matcher, twice)
    assert repeated["throttled"] > 20
    assert shipped["fired"] < repeated["fired"] < 2 * shipped["fired"]

"""The indexed matcher against the naive loop over every rule, and its edge cases."""

from __future__ import annotations

import random
from typing import Any

from advisering.engine.index import kle_prefixes, minimal_prefixes
from advisering.engine.matcher import Matcher, naive_matching
from advisering.engine.rules import Rule
from advisering.events import CaseEvent
from tests.unit.builders import CITIZEN_A, at, case, event, event_dict, rule_doc

CASE_TYPES = ("case.opened", "case.status-changed", "benefit.changed", "document.added")
CITIZEN_TYPES = ("citizen.moved", "citizen.admitted")
DEPARTMENTS = ("jobcenter", "ydelse", "boern-familie", "aeldre")
SOURCES = ("momentum", "dubu", "nexus")
STATUSES = ("opstaaet", "oplyst", "afgjort", "afsluttet")
ACTIONS = ("granted", "reduced", "stopped", "sanctioned")
GROUPS = (("32", "33", "34"), ("24", "25"), ("06", "07"))


def _one_or_many(rng: random.Random, pool: tuple[str, ...], most: int = 3) -> str | list[str]:
    values = rng.sample(pool, rng.randint(1, min(most, len(pool))))
    return values[0] if len(values) == 1 and rng.random() < 0.5 else values


def _kle(rng: random.Random, groups: int) -> str:
    return ".".join(rng.choice(GROUPS[i]) for i in range(groups))


def _where(rng: random.Random) -> dict[str, Any]:
    where: dict[str, Any] = {}
    if rng.random() < 0.5:
        where["benefit.action"] = _one_or_many(rng, ACTIONS)
    if rng.random() < 0.2:
        where["case.sensitivity"] = rng.choice(("fortrolige", "foelsomme"))
    if rng.random() < 0.05:
        where["missing.path"] = "x"
    return where


def random_rule(rng: random.Random, number: int) -> Rule:
    """A valid rule with a random mix of when-conditions over small pools, so rules collide."""
    when: dict[str, Any] = {"type": _one_or_many(rng, CASE_TYPES + CITIZEN_TYPES, 2)}
    if rng.random() < 0.6:
        when["department"] = _one_or_many(rng, DEPARTMENTS)
    if rng.random() < 0.7:
        prefixes = [_kle(rng, rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
        when["kle"] = prefixes[0] if len(prefixes) == 1 else prefixes
    if rng.random() < 0.3:
        when["status"] = _one_or_many(rng, STATUSES)
    if rng.random() < 0.15:
        when["previous_status"] = _one_or_many(rng, STATUSES)
    if rng.random() < 0.25:
        when["source"] = _one_or_many(rng, SOURCES, 2)
    if rng.random() < 0.3:
        when["where"] = _where(rng)
    return Rule.model_validate(rule_doc(
        id=f"r-{number:05d}", when=when, enabled=rng.random() < 0.95,
    ))


def random_event(rng: random.Random, number: int) -> CaseEvent:
    """A valid event: any type, department (some no rule names), KLE of 1-3 groups, payload."""
    extra: dict[str, Any] = {}
    if rng.random() < 0.6:
        extra["benefit"] = {"action": rng.choice(ACTIONS)}
    raw: dict[str, Any] = {
        "specversion": "1.0", "id": f"ev-{number}", "source": rng.choice(SOURCES),
        "time": at(), "data": {"parties": [{"citizen": CITIZEN_A}], **extra},
    }
    if rng.random() < 0.15:
        raw["type"] = rng.choice(CITIZEN_TYPES)
    else:
        raw["type"] = rng.choice(CASE_TYPES)
        raw["data"]["case"] = case(
            f"C-{number}", rng.choice((*DEPARTMENTS, "sundhed")),
            kle=_kle(rng, rng.choice((1, 2, 3, 3, 3))), status=rng.choice(STATUSES),
            previous_status=rng.choice((None, *STATUSES)),
            sensitivity=rng.choice((None, "fortrolige", "foelsomme")),
        )
    return CaseEvent.model_validate(raw)


def _assert_agrees(rules: list[Rule], events: list[CaseEvent]) -> int:
    # Without the memo, with it (each event seen twice: a miss, then a hit), and with a
    # memo so small it is cleared over and over.
    matchers = [Matcher(rules, memo_limit=0), Matcher(rules), Matcher(rules, memo_limit=7)]
    reference = matchers[0].compiled
    matched = 0
    for ev in events:
        expected = naive_matching(reference, ev)
        ids = [c.rule.id for c in expected]
        assert ids == sorted(ids)
        of_type = {c.rule.id for c in matchers[0].of_type(ev)}
        for matcher in matchers:
            for _ in range(2):
                assert [c.rule.id for c in matcher.matching(ev)] == ids, ev.id
            assert set(ids) <= {c.rule.id for c in matcher.candidates(ev)} <= of_type
        matched += len(expected)
    return matched


def test_index_equals_naive_loop_on_thousands_of_random_rules() -> None:
    """Several thousand random rules: the index returns exactly what the naive loop does."""
    rng = random.Random(20261129)
    rules = [random_rule(rng, n) for n in range(2500)]
    events = [random_event(rng, n) for n in range(1200)]
    matched = _assert_agrees(rules, events)
    assert matched > 10 * len(events)


def test_index_equals_naive_loop_on_many_small_shuffled_rule_sets() -> None:
    """Small rule sets given in shuffled order agree too, with sparse index buckets."""
    rng = random.Random(7)
    total = 0
    for round_ in range(30):
        rules = [random_rule(rng, n) for n in range(rng.randint(1, 60))]
        rng.shuffle(rules)
        events = [random_event(rng, 1000 * round_ + n) for n in range(150)]
        total += _assert_agrees(rules, events)
    assert total > 100


def _rule(rule_id: str, **when: Any) -> Rule:
    return Rule.model_validate(rule_doc(id=rule_id, when={"type": "case.opened", **when}))


def _opened(department: str, kle: str) -> CaseEvent:
    # Not through validate_event: the matcher must not depend on the vocabulary.
    return CaseEvent.model_validate(event_dict("case.opened", case("C-1", department, kle=kle)))


def _with_kle(ev: CaseEvent, kle: str) -> CaseEvent:
    """``ev`` with a KLE the event schema would refuse, to probe the prefix logic alone."""
    assert ev.data.case is not None
    bad_case = ev.data.case.model_copy(update={"kle": kle})
    return ev.model_copy(update={"data": ev.data.model_copy(update={"case": bad_case})})


def _ids(matcher: Matcher, ev: CaseEvent) -> list[str]:
    return [c.rule.id for c in matcher.matching(ev)]


def test_rule_without_department_is_found_for_every_department() -> None:
    """A rule with no department condition matches events of any department, known or not."""
    matcher = Matcher([_rule("alle"), _rule("kun-jc", department="jobcenter")])
    for department in (*DEPARTMENTS, "tandpleje", "ukendt-afdeling"):
        expected = ["alle", "kun-jc"] if department == "jobcenter" else ["alle"]
        assert _ids(matcher, _opened(department, "27.24.00")) == expected


def test_kle_prefix_matches_whole_dot_groups_only() -> None:
    """Prefix 32 matches 32, 32.24 and 32.24.06, never 33.32, 3.24 or 320."""
    matcher = Matcher([_rule("k32", kle="32"), _rule("k3224", kle="32.24.06")])
    assert _ids(matcher, _opened("jobcenter", "32.24.06")) == ["k32", "k3224"]
    assert _ids(matcher, _opened("jobcenter", "32.24")) == ["k32"]
    assert _ids(matcher, _opened("jobcenter", "32")) == ["k32"]
    assert _ids(matcher, _opened("jobcenter", "33.32.00")) == []
    base = _opened("jobcenter", "32.24.06")
    for odd in ("320", "3.24", "320.24.06", "3", "33.32"):
        odd_event = _with_kle(base, odd)
        assert _ids(matcher, odd_event) == [] == naive_matching(matcher.compiled, odd_event)
    assert kle_prefixes("32.24.06") == ("32", "32.24", "32.24.06")
    assert kle_prefixes("320") == ("320",)


def test_citizen_events_reach_only_rules_without_department_or_kle() -> None:
    """A citizen.* event has no case: department or KLE conditions can never hold for it."""
    rules = [
        Rule.model_validate(rule_doc(id=rule_id, when={"type": "citizen.moved", **when}))
        for rule_id, when in (
            ("bare", {}), ("dept", {"department": "aeldre"}), ("kle", {"kle": "27"}),
            ("status", {"status": "oplyst"}), ("source", {"source": "cpr-replika"}),
        )
    ]
    matcher = Matcher(rules)
    moved = event("citizen.moved", None, source="cpr-replika")
    assert _ids(matcher, moved) == ["bare", "source"]
    assert [c.rule.id for c in matcher.candidates(moved)] == ["bare", "source", "status"]
    assert len(matcher.of_type(moved)) == 5


def test_overlapping_prefixes_and_repeated_values_give_one_match() -> None:
    """A rule listing 32 and 32.24 (and a type or department twice) is returned once."""
    rule = _rule("dobbelt", kle=["32.24", "32", "32.24.06"],
                 department=["jobcenter", "jobcenter"], type=["case.opened", "case.opened"])
    matcher = Matcher([rule])
    assert _ids(matcher, _opened("jobcenter", "32.24.06")) == ["dobbelt"]
    assert minimal_prefixes(["32.24", "32", "32.24.06", "34.01", "34"]) == ("32", "34")


def test_results_come_in_rule_id_order_whatever_the_input_order() -> None:
    """Rules given out of order are matched, listed and compiled in rule id order."""
    names = ["zulu", "alfa", "mike", "bravo"]
    conditions: list[dict[str, Any]] = [{"kle": "32.24"}, {}, {"department": "jobcenter"},
                                        {"department": "jobcenter", "kle": "32"}]
    matcher = Matcher([_rule(n, **c) for n, c in zip(names, conditions, strict=True)])
    assert [c.rule.id for c in matcher.compiled] == sorted(names)
    assert _ids(matcher, _opened("jobcenter", "32.24.06")) == sorted(names)


def test_conditions_beyond_the_index_still_apply() -> None:
    """Source, status, previous status and where are checked within the candidates."""
    matcher = Matcher([
        _rule("status", status="afgjort"), _rule("prev", previous_status="oplyst"),
        _rule("source", source="dubu"), _rule("where", where={"case.sensitivity": "foelsomme"}),
    ])
    ev = event("case.opened", case("C-1", "jobcenter", status="afgjort",
                                   previous_status="oplyst", sensitivity="foelsomme"))
    assert _ids(matcher, ev) == ["prev", "status", "where"]
    assert len(matcher.candidates(ev)) == 4
    assert _ids(matcher, event("document.added", case("C-1", "jobcenter"))) == []


def test_memo_keeps_candidates_not_results() -> None:
    """Two events with the same type, department and KLE are still judged on their own."""
    matcher = Matcher([_rule("afgjort", status="afgjort"), _rule("alle")], memo_limit=1)
    decided = event("case.opened", case("C-1", "jobcenter", status="afgjort"))
    open_ = event("case.opened", case("C-2", "jobcenter", status="oplyst"))
    other = event("case.opened", case("C-3", "ydelse", status="afgjort"))
    for _ in range(2):
        assert _ids(matcher, decided) == ["afgjort", "alle"]
        assert _ids(matcher, open_) == ["alle"]
        assert _ids(matcher, other) == ["afgjort", "alle"]

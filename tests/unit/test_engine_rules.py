"""The engine with the shipped rules: who is told what, and when nobody is told."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from advisering.engine.evaluate import Outcome, notification_id, process
from advisering.engine.matcher import Matcher
from advisering.engine.notification import Recipient
from advisering.engine.overview import CitizenState
from tests.unit.builders import (
    CITIZEN_A,
    CREATED,
    at,
    case,
    event,
    event_dict,
    make_rule,
    real_matcher,
    real_rules,
    state_with,
    valid,
)

RULES = real_rules().by_id()
MATCHER = real_matcher()

BF = case("DUBU-1", "boern-familie", kle="34.15.00", unit="bf-syd", caseworker="bf-0042")
BF2 = case("DUBU-2", "boern-familie", kle="34.02.00", unit="bf-nord", caseworker="bf-0099")
JC = case("MOM-1", "jobcenter", kle="32.24.06", unit="jc-nord", caseworker="jc-4711")
YD = case("YD-1", "ydelse", kle="32.24.06", unit="ydelse-c", caseworker="yd-0003")
SP = case("SP-2", "handicap-psykiatri", kle="27.24.00", unit="sp-nord", caseworker="sp-0007")
SP_UNIT = case("SP-1", "handicap-psykiatri", kle="27.24.00", unit="bosted-vest", caseworker=None)
AE = case("AE-1", "aeldre", kle="27.36.04", unit="hjemmepleje-oest", caseworker="hp-0101")
SKOLE = case("SK-1", "skole", kle="17.01.00", unit="skole-midt", caseworker="sk-0012")


def trigger(event_type: str, case_data: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    source = "cpr-replika" if case_data is None else "momentum"
    return event_dict(event_type, case_data, event_id="trigger-1", source=source, **kw)


def sanction(case_data: dict[str, Any] = JC, action: str = "sanctioned") -> dict[str, Any]:
    return trigger("benefit.changed", case_data, benefit={"action": action})


@dataclass(frozen=True)
class Scenario:
    cases: tuple[dict[str, Any], ...]
    event: dict[str, Any]
    related_case: str
    caseworker: str | None
    unit: str
    department: str
    says: tuple[str, ...]
    negatives: dict[str, tuple[tuple[dict[str, Any], ...], dict[str, Any]]] = field(
        default_factory=dict
    )


def _closed(case_data: dict[str, Any]) -> dict[str, Any]:
    return {**case_data, "status": "afsluttet"}


def _hospital(event_type: str, says: str) -> Scenario:
    return Scenario(
        (AE,), trigger(event_type), "AE-1", "hp-0101", "hjemmepleje-oest", "aeldre",
        ("AE-1", "29.11.2026", says),
        {
            "aeldre case outside KLE 27.36": ((case("AE-2", "aeldre", kle="27.24.00"),),
                                              trigger(event_type)),
            "27.36 case outside aeldre": ((case("SU-1", "sundhed", kle="27.36.04"),),
                                          trigger(event_type)),
            "no open case": ((), trigger(event_type)),
        },
    )


SCENARIOS: dict[str, Scenario] = {
    "sanktion-til-boernesag": Scenario(
        (BF,), sanction(), "DUBU-1", "bf-0042", "bf-syd", "boern-familie",
        ("DUBU-1", "jobcentret", "29.11.2026"),
        {
            "benefit granted": ((BF,), sanction(action="granted")),
            "trigger in sundhed": ((BF,), sanction({**JC, "department": "sundhed"})),
            "related case outside KLE 34": ((case("BF-9", "boern-familie", kle="27.36.00"),),
                                            sanction()),
            "no related case": ((SP,), sanction()),
        },
    ),
    "ydelsesstop-til-handicap": Scenario(
        (SP_UNIT,), sanction(YD, "stopped"), "SP-1", None, "bosted-vest", "handicap-psykiatri",
        ("SP-1", "ydelsesområdet", "29.11.2026"),
        {
            "benefit sanctioned": ((SP_UNIT,), sanction(YD, "sanctioned")),
            "trigger in jobcenter": ((SP_UNIT,), sanction(JC, "stopped")),
            "related case in aeldre": ((AE,), sanction(YD, "stopped")),
            "no related case": ((), sanction(YD, "stopped")),
        },
    ),
    "udeblivelse-til-socialpsykiatri": Scenario(
        (SP,), trigger("appointment.missed", JC), "SP-2", "sp-0007", "sp-nord",
        "handicap-psykiatri", ("SP-2", "jobcentret", "29.11.2026"),
        {
            "trigger in ydelse": ((SP,), trigger("appointment.missed", YD)),
            "other event type": ((SP,), trigger("document.added", JC)),
            "related case in aeldre": ((AE,), trigger("appointment.missed", JC)),
            "related case closed": ((_closed(SP),), trigger("appointment.missed", JC)),
        },
    ),
    "doedsfald-til-alle": Scenario(
        (AE,), trigger("citizen.deceased"), "AE-1", "hp-0101", "hjemmepleje-oest", "aeldre",
        ("AE-1", "29.11.2026", "afgået ved døden"),
        {
            "no open case": ((), trigger("citizen.deceased")),
            "only a closed case": ((_closed(AE),), trigger("citizen.deceased")),
        },
    ),
    "flytning-til-alle": Scenario(
        (SKOLE,), trigger("citizen.moved"), "SK-1", "sk-0012", "skole-midt", "skole",
        ("SK-1", "29.11.2026", "flyttet"),
        {
            "no open case": ((), trigger("citizen.moved")),
            "only a closed case": ((_closed(SKOLE),), trigger("citizen.moved")),
        },
    ),
    "indlaeggelse-til-hjemmepleje": _hospital("citizen.admitted", "indlagt"),
    "udskrivning-til-hjemmepleje": _hospital("citizen.discharged", "udskrevet"),
    "ny-boernesag-orientering": Scenario(
        (JC,), trigger("case.opened", BF), "DUBU-1", "bf-0042", "bf-syd", "boern-familie",
        ("DUBU-1", "jobcentret"),
        {
            "new case in skole": ((JC,), trigger("case.opened", SKOLE)),
            "status change, not opened": ((JC,), trigger("case.status-changed", BF)),
            "no other open case": ((), trigger("case.opened", BF)),
            "other case in own department": ((BF2,), trigger("case.opened", BF)),
            "other case only foelsomme": (({**JC, "sensitivity": "foelsomme"},),
                                          trigger("case.opened", BF)),
        },
    ),
}

NEGATIVES = [(rule_id, name) for rule_id, s in SCENARIOS.items() for name in s.negatives]


def run(cases: tuple[dict[str, Any], ...], raw: dict[str, Any],
        matcher: Matcher = MATCHER, state: CitizenState | None = None) -> Outcome:
    start = state if state is not None else state_with(*cases)
    return process(start, valid(raw), CITIZEN_A, matcher, CREATED)


def of_rule(outcome: Outcome, rule_id: str) -> list[dict[str, Any]]:
    return [n.to_json() for n in outcome.notifications if n.rule == rule_id]


def test_every_shipped_rule_has_a_scenario() -> None:
    """Each rule in rules/ is exercised by a scenario below, and no scenario is orphaned."""
    assert set(SCENARIOS) == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(SCENARIOS))
def test_rule_fires(rule_id: str) -> None:
    """The rule tells the right recipient via the right case, with rendered message and basis."""
    s = SCENARIOS[rule_id]
    outcome = run(s.cases, s.event)
    assert rule_id in outcome.matched
    [note] = of_rule(outcome, rule_id)
    rule = RULES[rule_id]
    assert note["recipient"] == {"caseworker": s.caseworker, "unit": s.unit,
                                 "department": s.department}
    assert note["related_case"]["id"] == s.related_case
    assert "{" not in note["message"]
    assert "}" not in note["message"]
    for text in s.says:
        assert text in note["message"]
    assert note["legal_basis"] == rule.legal_basis
    assert note["severity"] == rule.severity
    assert note["citizen"] == CITIZEN_A
    assert note["created"] == CREATED
    assert note["trigger"]["event_id"] == "trigger-1"
    key = s.caseworker or f"unit:{s.unit}"
    assert note["id"] == notification_id(rule_id, valid(s.event), CITIZEN_A, key, s.related_case)


@pytest.mark.parametrize(("rule_id", "negative"), NEGATIVES)
def test_rule_stays_silent(rule_id: str, negative: str) -> None:
    """When one condition of the rule fails, the rule sends nothing."""
    cases, raw = SCENARIOS[rule_id].negatives[negative]
    outcome = run(cases, raw)
    assert of_rule(outcome, rule_id) == []


def test_unit_is_recipient_without_caseworker() -> None:
    """A related case without caseworker is told through its unit (key unit:<unit>)."""
    s = SCENARIOS["ydelsesstop-til-handicap"]
    [note] = of_rule(run(s.cases, s.event), "ydelsesstop-til-handicap")
    assert note["recipient"]["caseworker"] is None
    assert note["recipient"]["unit"] == "bosted-vest"


def test_own_department_and_own_case_are_not_told() -> None:
    """notify: related skips the event's own case and every case of its own department."""
    rule = make_rule(when={"type": "document.added"}, related=None, throttle=None)
    other_jc = case("MOM-2", "jobcenter", kle="32.24.06", caseworker="jc-0002")
    outcome = run((JC, other_jc, AE), trigger("document.added", JC), Matcher([rule]))
    assert [n.related_case.id for n in outcome.notifications] == ["AE-1"]


def test_sensitive_trigger_is_suppressed() -> None:
    """A foelsomme trigger case matches but is suppressed for a rule without allow_sensitive."""
    outcome = run((BF,), sanction({**JC, "sensitivity": "foelsomme"}))
    assert "sanktion-til-boernesag" in outcome.matched
    assert "sanktion-til-boernesag" in outcome.suppressed
    assert outcome.notifications == []


def test_allow_sensitive_rule_is_not_suppressed() -> None:
    """The same trigger notifies when the rule says allow_sensitive: true."""
    raw = sanction({**JC, "sensitivity": "foelsomme"})
    plain = run((BF,), raw, Matcher([make_rule()]))
    allowed = run((BF,), raw, Matcher([make_rule(allow_sensitive=True)]))
    assert plain.suppressed == ["test-regel"]
    assert plain.notifications == []
    assert allowed.suppressed == []
    assert [n.related_case.id for n in allowed.notifications] == ["DUBU-1"]


def test_throttle_within_window() -> None:
    """A second matching event within the window for the same recipient is throttled."""
    first = run((BF,), sanction())
    assert len(of_rule(first, "sanktion-til-boernesag")) == 1
    second_raw = event_dict("benefit.changed", JC, event_id="trigger-2", time=at(2),
                            benefit={"action": "stopped"})
    second = run((), second_raw, state=first.state)
    assert of_rule(second, "sanktion-til-boernesag") == []
    assert second.throttled == ["sanktion-til-boernesag"]
    assert second.duplicates == 0


def test_throttle_ends_after_window() -> None:
    """A matching event after the P1D window notifies again."""
    first = run((BF,), sanction())
    later = event_dict("benefit.changed", JC, event_id="trigger-3", time=at(25),
                       benefit={"action": "sanctioned"})
    outcome = run((), later, state=first.state)
    assert outcome.throttled == []
    assert len(of_rule(outcome, "sanktion-til-boernesag")) == 1


def test_throttle_is_per_recipient() -> None:
    """Within the window another recipient of the same citizen is still told."""
    first = run((BF,), sanction())
    state = first.state
    state_two = process(state, event("case.opened", BF2, event_id="o-bf2", time=at(1)),
                        CITIZEN_A, MATCHER, CREATED).state
    second_raw = event_dict("benefit.changed", JC, event_id="trigger-2", time=at(2),
                            benefit={"action": "sanctioned"})
    outcome = run((), second_raw, state=state_two)
    notes = of_rule(outcome, "sanktion-til-boernesag")
    assert [n["recipient"]["caseworker"] for n in notes] == ["bf-0099"]
    assert outcome.throttled == ["sanktion-til-boernesag"]


def test_notification_ids_are_deterministic() -> None:
    """The same state and event give the same notification ids."""
    s = SCENARIOS["doedsfald-til-alle"]
    first = run((AE, SP), s.event)
    second = run((AE, SP), s.event)
    assert [n.id for n in first.notifications] == [n.id for n in second.notifications]
    assert len(first.notifications) == 2


def test_notification_ids_differ_per_recipient_and_related_case() -> None:
    """Different recipients, related cases or events give different notification ids."""
    same_worker = case("AE-2", "aeldre", kle="27.36.04", unit="hjemmepleje-oest",
                       caseworker="hp-0101")
    outcome = run((AE, SP, same_worker), SCENARIOS["doedsfald-til-alle"].event)
    ids = [n.id for n in outcome.notifications]
    assert sorted(n.related_case.id for n in outcome.notifications) == [
        "AE-1", "AE-2", "SP-2"
    ]
    assert len(set(ids)) == 3
    other = run((AE,), {**SCENARIOS["doedsfald-til-alle"].event, "id": "trigger-9"})
    assert other.notifications[0].id not in ids


def test_origin_lists_other_departments_without_sensitive_ones() -> None:
    """notify: origin names other departments, leaving out one whose only case is foelsomme."""
    cases = (
        JC, AE,
        {**SP, "sensitivity": "foelsomme"},
        case("SU-1", "sundhed", kle="29.09.00", sensitivity="foelsomme"),
        case("SU-2", "sundhed", kle="29.09.00"),
        BF2,
    )
    outcome = run(cases, trigger("case.opened", BF))
    [note] = of_rule(outcome, "ny-boernesag-orientering")
    assert note["recipient"]["caseworker"] == "bf-0042"
    assert "ældreområdet, jobcentret, sundhedsområdet." in note["message"]
    assert "handicap og psykiatri" not in note["message"]
    assert "børn og familie" not in note["message"]
    for other in ("MOM-1", "AE-1", "SP-2", "SU-1", "SU-2", "DUBU-2"):
        assert other not in note["message"]


def test_disabled_rule_is_not_compiled() -> None:
    """A rule with enabled: false never matches."""
    outcome = run((BF,), sanction(), Matcher([make_rule(enabled=False)]))
    assert outcome.matched == []
    assert outcome.notifications == []


def test_notification_id_differs_per_citizen() -> None:
    """One event about two citizens gives two ids for the same recipient and related case."""
    event = valid(sanction())
    assert notification_id("r", event, CITIZEN_A, "bf-1", "DUBU-1") != notification_id(
        "r", event, "ps1-" + "b" * 52, "bf-1", "DUBU-1")


@pytest.mark.parametrize("caseworker", ["bf-0042", None, ""])
def test_recipient_key_is_the_one_rule_for_keys(caseworker: str | None) -> None:
    """Recipient.key is the caseworker, else unit:<unit> (an empty caseworker is none)."""
    recipient = Recipient(caseworker, "ppr", "skole")
    assert recipient.key == (caseworker or "unit:ppr")

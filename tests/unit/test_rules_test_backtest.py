"""`advisering rules test` and `rules backtest` on fixed scenarios, with exact counts."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from advisering.cli.main import build_parser, main
from advisering.edge.prepare import prepare_event
from advisering.engine.explain import explain
from advisering.engine.matcher import Matcher
from advisering.engine.rules import load_rules
from advisering.privacy import pseudonymise
from advisering.rulebook import THROWAWAY_KEY
from advisering.rulebook.backtest import Progress, RuleFigures, backtest, weeks_between
from advisering.rulebook.history import file_events
from advisering.rulebook.trial import TrialReport, load_overview, run_trial
from advisering.yamlfiles import YamlFileError
from tests.unit.builders import CPR_A, CPR_B, VOCABULARY, case, event, real_matcher, state_with

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "rules_tool"
SCENARIO = FIXTURES / "scenario.jsonl"
OVERVIEW = FIXTURES / "overview.json"
A = pseudonymise(CPR_A, THROWAWAY_KEY)
B = pseudonymise(CPR_B, THROWAWAY_KEY)


def trial(scenario: Path = SCENARIO, overview: Path | None = OVERVIEW) -> TrialReport:
    states = load_overview(overview, THROWAWAY_KEY, VOCABULARY) if overview else None
    return run_trial(scenario, real_matcher(), VOCABULARY, THROWAWAY_KEY, states)


def verdicts(report: TrialReport) -> list[tuple[int, str, str, str | None]]:
    """(line, rule, verdict, condition) of every verdict, in scenario order."""
    return [(step.line, v.rule, v.verdict, v.condition)
            for step in report.steps for _, e in step.citizens for v in e.verdicts]


# --- rules test -------------------------------------------------------------------------------

def test_trial_of_the_fixture_scenario_gives_exact_verdicts() -> None:
    """Each line of the fixture: which rules fired and which almost did, and why."""
    report = trial()
    assert verdicts(report) == [
        (1, "sanktion-til-boernesag", "fired", None),
        (1, "ydelsesstop-til-handicap", "condition", "when.department"),
        (2, "sanktion-til-boernesag", "throttled", "throttle"),
        (2, "ydelsesstop-til-handicap", "condition", "when.department"),
        (3, "sanktion-til-boernesag", "throttled", "throttle"),
        (3, "ydelsesstop-til-handicap", "fired", None),
        (4, "udeblivelse-til-socialpsykiatri", "no_target", "related.department"),
        (5, "indlaeggelse-til-hjemmepleje", "fired", None),
        (6, "sanktion-til-boernesag", "condition", "when.where.benefit.action"),
        (6, "ydelsesstop-til-handicap", "condition", "when.department"),
        (7, "sanktion-til-boernesag", "suppressed", "allow_sensitive"),
        (7, "ydelsesstop-til-handicap", "condition", "when.department"),
    ]
    assert report.summary().to_json() == {
        "events": 9, "rejected": 1, "notifications": 3,
        "rules_fired": ["indlaeggelse-til-hjemmepleje", "sanktion-til-boernesag",
                        "ydelsesstop-til-handicap"],
        "almost": 9,
    }
    repeated = report.steps[7].citizens[0][1]
    assert repeated.repeated
    assert report.steps[8].rejection is not None
    assert report.steps[8].rejection.reason.value == "missing_case"


def test_trial_notifications_name_recipient_and_render_the_message() -> None:
    """Fired rules say for whom (caseworker, or the unit without one) with the rendered message."""
    notes = {(n.rule, n.citizen): n.to_json() for n in trial().notifications()}
    to_child = notes[("sanktion-til-boernesag", A)]
    assert to_child["recipient"] == {"caseworker": "bf-0042", "unit": "bf-syd",
                                     "department": "boern-familie"}
    assert to_child["message"] == (
        "Borgeren i din sag DUBU-A har fået en sanktion eller et stop af ydelse i jobcentret "
        "(29.11.2026). Overvej om familiens situation kræver opfølgning.")
    to_unit = notes[("ydelsesstop-til-handicap", A)]
    assert to_unit["recipient"] == {"caseworker": None, "unit": "socialpsykiatri",
                                    "department": "handicap-psykiatri"}
    assert to_unit["related_case"] == {"id": "SENSUM-A", "source": "sensum", "kle": "27.12.00"}
    assert notes[("indlaeggelse-til-hjemmepleje", B)]["recipient"]["caseworker"] == "hp-0007"


def test_near_miss_reasons_say_what_the_event_had_and_the_rule_wanted() -> None:
    """The reasons name the event's value and the rule's wish, for each kind of near miss."""
    reasons = {(step.line, v.rule): v.reason for step in trial().steps
               for _, e in step.citizens for v in e.almost}
    assert reasons[(1, "ydelsesstop-til-handicap")] == (
        "department is 'jobcenter'; the rule wants ydelse")
    assert reasons[(2, "sanktion-til-boernesag")] == (
        "bf-0042 (case DUBU-A) was already told by this rule about this citizen; "
        "throttle P1D lasts until 2026-11-30T09:00+01:00")
    assert reasons[(4, "udeblivelse-til-socialpsykiatri")] == (
        "no related case: NEXUS-B: department 'aeldre' is not handicap-psykiatri")
    assert reasons[(6, "sanktion-til-boernesag")] == (
        "data.benefit.action is 'granted'; the rule wants sanctioned, stopped")
    assert reasons[(7, "sanktion-til-boernesag")].startswith("the event's case is foelsomme")


def test_without_overview_the_related_cases_are_missing() -> None:
    """Without the starting overview, the sanction finds no related case (and says so)."""
    report = trial(overview=None)
    assert report.summary().notifications == 0
    first = report.steps[0].citizens[0][1].verdicts[0]
    assert (first.rule, first.verdict, first.condition, first.reason) == (
        "sanktion-til-boernesag", "no_target", "related",
        "the citizen has no other open case in the overview")


def test_pseudonymised_scenario_and_pseudonym_overview_give_the_same_trial(tmp_path: Path) -> None:
    """Events with citizen pseudonyms and an overview keyed by pseudonym: same verdicts."""
    scenario = tmp_path / "scenario.jsonl"
    lines = []
    for original in SCENARIO.read_bytes().splitlines():
        line = original.replace(b'"cpr": "' + CPR_A.encode(), b'"citizen": "' + A.encode())
        lines.append(line.replace(b'"cpr": "' + CPR_B.encode(), b'"citizen": "' + B.encode()))
    scenario.write_bytes(b"\n".join(lines) + b"\n")
    assert b'"cpr"' not in scenario.read_bytes()
    overview = tmp_path / "overview.json"
    raw = orjson.loads(OVERVIEW.read_bytes())
    overview.write_bytes(orjson.dumps({A: raw[CPR_A], B: raw[CPR_B]}))
    assert verdicts(trial(scenario, overview)) == verdicts(trial())


def test_overview_problems_name_path_but_never_a_cpr_number(tmp_path: Path) -> None:
    """Bad overview entries are reported by path; a CPR-keyed citizen is named by position."""
    path = tmp_path / "overview.json"
    path.write_bytes(orjson.dumps({
        CPR_A: [{"id": "X", "department": "skattecenter", "unit": "u", "kle": "34"}],
        A: [{"id": "Y", "department": "skole", "unit": "u", "kle": "3", "colour": "red"}],
        "nobody": [],
    }))
    with pytest.raises(YamlFileError) as caught:
        load_overview(path, THROWAWAY_KEY, VOCABULARY)
    found = [(p.path, p.message) for p in caught.value.problems]
    assert found == [
        ("<citizen 1>[0].department", "unknown department 'skattecenter'"),
        (f"{A}[0].kle", "KLE must be dot-separated two-digit groups, like 34.15.00"),
        (f"{A}[0].colour", "unknown field"),
        ("<citizen 3>", "not a pseudonym (ps1-...) or CPR number"),
    ]
    assert CPR_A not in str(caught.value)


def test_explain_names_the_related_condition_and_origin_reasons() -> None:
    """explain: a related case under another KLE, and an origin rule with nobody else around."""
    matcher = real_matcher()
    state = state_with(case("DUBU-9", "boern-familie", kle="35.01.00"), hours=-5)
    sanction = event("benefit.changed", case("MOM-9", "jobcenter"),
                     benefit={"action": "sanctioned"}, event_id="s-9")
    result = explain(state, sanction, "c", matcher, "x")
    first = result.verdicts[0]
    assert (first.verdict, first.condition, first.reason) == (
        "no_target", "related.kle", "no related case: DUBU-9: KLE 35.01.00 is not under 34")
    opened = event("case.opened", case("DUBU-10", "boern-familie", kle="34.15.00"),
                   event_id="o-10", source="dubu")
    alone = explain(None, opened, "c", matcher, "x")
    assert [(v.rule, v.verdict, v.condition) for v in alone.verdicts] == [
        ("ny-boernesag-orientering", "no_target", "notify")]


# --- rules backtest ---------------------------------------------------------------------------

BASE = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def raw_event(n: int, event_type: str, hours: float, case_data: dict[str, Any] | None,
              cprs: tuple[str, ...] = (CPR_A,), **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"parties": [{"cpr": cpr, "role": "primaer"} for cpr in cprs], **extra}
    if case_data is not None:
        data["case"] = case_data
    return {"specversion": "1.0", "id": f"h-{n}", "source": "historik", "type": event_type,
            "time": (BASE + dt.timedelta(hours=hours)).isoformat(), "data": data}


def write_history(path: Path) -> Path:
    """A fixed history: two citizens, sanctions three times a day, a move, a stay in hospital."""
    mom_a = case("MOM-A", "jobcenter", status="afgjort", caseworker="jc-4711")
    dubu_a = case("DUBU-A", "boern-familie", kle="34.15.00", caseworker="bf-0042")
    nexus_b = case("NEXUS-B", "aeldre", kle="27.36.04", caseworker="hp-0007")
    mom_b = case("MOM-B", "jobcenter", caseworker="jc-0815", sensitivity="foelsomme")
    sanction = {"benefit": {"action": "sanctioned"}}
    events = [
        raw_event(1, "case.opened", 0, mom_a),
        raw_event(2, "case.opened", 1, dubu_a),                  # ny-boernesag: 1
        raw_event(3, "case.opened", 1, nexus_b, (CPR_B,)),
        raw_event(4, "benefit.changed", 25, mom_a, **sanction),  # sanktion: 1
        raw_event(5, "benefit.changed", 26.5, mom_a, **sanction),  # P1D: throttled; PT1H: 1
        raw_event(6, "benefit.changed", 28, mom_a, **sanction),  # P1D: throttled; PT1H: 1
        raw_event(6, "benefit.changed", 28, mom_a, **sanction),  # the same event again
        raw_event(7, "benefit.changed", 30, mom_b, (CPR_B,), **sanction),  # suppressed
        raw_event(8, "citizen.moved", 40, None, (CPR_A, CPR_B), move={}),  # flytning: 2 + 2
        raw_event(9, "citizen.admitted", 50, None, (CPR_B,)),    # indlaeggelse: 1
        raw_event(10, "citizen.discharged", 60, None, (CPR_B,)),  # udskrivning: 1
        dict(raw_event(11, "case.opened", 61, mom_a), subject=CPR_A),  # cpr_detected
    ]
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n{not json\n")
    return path


def candidate_rules(tmp_path: Path) -> Path:
    """The shipped rules minus flytning-til-alle, with sanktion-til-boernesag throttled PT1H."""
    directory = tmp_path / "candidate"
    shutil.copytree(ROOT / "rules", directory)
    (directory / "flytning-til-alle.yaml").unlink()
    sanction = directory / "sanktion-til-boernesag.yaml"
    text = sanction.read_text(encoding="utf-8")
    assert "throttle: P1D" in text
    sanction.write_text(text.replace("throttle: P1D", "throttle: PT1H"), encoding="utf-8")
    return directory


def zero() -> RuleFigures:
    return RuleFigures()


def figures(notifications: int, recipients: int, busiest: str | None, per_week: float,
            throttled: int = 0, suppressed: int = 0, matched: int = 0) -> RuleFigures:
    return RuleFigures(notifications, recipients, busiest, per_week, throttled, suppressed,
                       matched)


BASELINE_RULES = {
    "doedsfald-til-alle": zero(),
    "flytning-til-alle": figures(4, 4, "bf-0042", 1.0, matched=2),
    "indlaeggelse-til-hjemmepleje": figures(1, 1, "hp-0007", 1.0, matched=1),
    "ny-boernesag-orientering": figures(1, 1, "bf-0042", 1.0, matched=1),
    "sanktion-til-boernesag": figures(1, 1, "bf-0042", 1.0, throttled=2, suppressed=1,
                                      matched=4),
    "udeblivelse-til-socialpsykiatri": zero(),
    "udskrivning-til-hjemmepleje": figures(1, 1, "hp-0007", 1.0, matched=1),
    "ydelsesstop-til-handicap": zero(),
}
CANDIDATE_RULES = {k: v for k, v in BASELINE_RULES.items() if k != "flytning-til-alle"}
CANDIDATE_RULES["sanktion-til-boernesag"] = figures(3, 1, "bf-0042", 3.0, suppressed=1, matched=4)


def test_backtest_counts_per_rule_and_the_difference_to_the_baseline(tmp_path: Path) -> None:
    """Exact figures per rule for candidate and baseline, the difference, rejects by reason."""
    history = write_history(tmp_path / "history.jsonl")
    candidate = Matcher(load_rules(candidate_rules(tmp_path), VOCABULARY))
    report = backtest(file_events(history, THROWAWAY_KEY, VOCABULARY), candidate, real_matcher())
    assert (report.events, report.accepted, dict(report.rejected)) == (
        13, 11, {"cpr_detected": 1, "not_json": 1})
    assert report.candidate == CANDIDATE_RULES
    assert report.baseline == BASELINE_RULES
    assert report.candidate_overview == {"citizens": 2, "open_cases": 4, "duplicates": 1,
                                         "stale": 0}
    difference = report.difference()
    assert difference["sanktion-til-boernesag"] == {
        "status": "changed", "notifications": 2, "recipients": 0, "busiest_per_week": 2.0,
        "throttled": -2, "suppressed": 0, "matched": 0}
    assert difference["flytning-til-alle"] == {
        "status": "removed", "notifications": -4, "recipients": -4, "busiest_per_week": -1.0,
        "throttled": 0, "suppressed": 0, "matched": -2}
    assert {k for k, v in difference.items() if v["status"] == "same"} == set(BASELINE_RULES) - {
        "sanktion-til-boernesag", "flytning-til-alle"}


def test_backtest_without_baseline_and_with_progress(tmp_path: Path) -> None:
    """No baseline: no difference; progress is reported every N events with a rate."""
    history = write_history(tmp_path / "history.jsonl")
    seen: list[Progress] = []
    report = backtest(file_events(history, THROWAWAY_KEY, VOCABULARY), real_matcher(),
                      progress=seen.append, every=5)
    assert report.baseline is None
    assert report.difference() == {}
    assert report.candidate == BASELINE_RULES
    assert [p.events for p in seen] == [5, 10]
    assert all(p.rate > 0 for p in seen)


def test_busiest_per_week_is_spread_over_the_period() -> None:
    """Per-week figures divide by the period in weeks, and never by less than one week."""
    day = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    assert weeks_between(day, day + dt.timedelta(days=2)) == 1.0
    assert weeks_between(day, day + dt.timedelta(days=21)) == 3.0
    assert weeks_between(None, None) == 1.0


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's settings: the shipped rules (the 'deployed' baseline) and topics."""
    monkeypatch.setenv("ADVISERING_RULES_DIR", str(ROOT / "rules"))
    monkeypatch.setenv("ADVISERING_TOPICS_DIR", str(ROOT / "topics"))


@pytest.mark.usefixtures("env")
def test_cli_rules_test_prints_fired_and_almost(capsys: pytest.CaptureFixture[str]) -> None:
    """`rules test` prints each event, FIRED and ALMOST lines and a summary; a bad line exits 1."""
    status = main(["rules", "test", "--scenario", str(SCENARIO), "--overview", str(OVERVIEW)])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[0] == ("line 1: benefit.changed from momentum at 29.11.2026 09:00, case MOM-A "
                      "(jobcenter, KLE 32.24.06, afgjort)")
    assert out[1] == f"  citizen {A[:12]}…"
    assert out[2] == ("    FIRED   sanktion-til-boernesag -> caseworker bf-0042 (bf-syd, "
                      "boern-familie) via case DUBU-A")
    assert ("    FIRED   ydelsesstop-til-handicap -> unit socialpsykiatri (handicap-psykiatri, "
            "no caseworker on the case) via case SENSUM-A") in out
    assert ("    ALMOST  udeblivelse-til-socialpsykiatri: no_target [related.department]: no "
            "related case: NEXUS-B: department 'aeldre' is not handicap-psykiatri") in out
    assert "line 9: rejected: missing_case at data.case: a benefit.changed event must carry " \
           "data.case" in out
    assert out[-1] == ("9 event(s), 1 rejected; 3 notification(s) (rules: "
                       "indlaeggelse-til-hjemmepleje, sanktion-til-boernesag, "
                       "ydelsesstop-til-handicap); 9 near miss(es).")


@pytest.mark.usefixtures("env")
def test_cli_rules_test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rules test --json`: steps with fired notifications and near misses; valid lines exit 0."""
    scenario = tmp_path / "ok.jsonl"
    scenario.write_bytes(b"\n".join(SCENARIO.read_bytes().splitlines()[:3]) + b"\n")
    assert main(["rules", "test", "--scenario", str(scenario), "--overview", str(OVERVIEW),
                 "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["summary"] == {"events": 3, "rejected": 0, "notifications": 2,
                               "rules_fired": ["sanktion-til-boernesag",
                                               "ydelsesstop-til-handicap"], "almost": 4}
    second = data["steps"][1]["citizens"][0]
    assert (second["citizen"], second["fired"]) == (A, [])
    assert second["almost"][0] == {
        "rule": "sanktion-til-boernesag", "verdict": "throttled", "condition": "throttle",
        "reason": "bf-0042 (case DUBU-A) was already told by this rule about this citizen; "
                  "throttle P1D lasts until 2026-11-30T09:00+01:00"}


@pytest.mark.usefixtures("env")
def test_cli_backtest_table_against_the_deployed_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """`rules backtest --rules CAND --file H`: the deployed rules are the default baseline."""
    history = write_history(tmp_path / "history.jsonl")
    candidate = candidate_rules(tmp_path)
    assert main(["rules", "backtest", "--rules", str(candidate), "--file", str(history)]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0] == f"Backtest of {candidate} against {ROOT / 'rules'}"
    assert out[1] == "  events: 13 read, 11 replayed, 2 rejected (1 cpr_detected, 1 not_json)"
    rows = {line.split()[0]: line.split()[1:] for line in out[6:14]}
    assert rows["sanktion-til-boernesag"] == ["3", "+2", "1", "3.00", "+2.00", "0", "-2", "1",
                                              "changed"]
    assert rows["flytning-til-alle"] == ["-", "-4", "-", "-4", "-", "-1.00", "-", "-",
                                         "removed"]
    assert rows["doedsfald-til-alle"] == ["0", "0", "0.00", "0", "0", "same"]
    assert captured.err == ""  # fewer events than one progress step


@pytest.mark.usefixtures("env")
def test_cli_backtest_json_without_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """`--rules` equal to ADVISERING_RULES_DIR: no baseline; --json gives exact figures."""
    history = write_history(tmp_path / "history.jsonl")
    assert main(["rules", "backtest", "--rules", str(ROOT / "rules"), "--file", str(history),
                 "--json", "--progress-every", "4"]) == 0
    captured = capsys.readouterr()
    data = orjson.loads(captured.out)
    assert (data["baseline"], data["difference"]) == (None, None)
    assert data["rules"] == {k: v.to_json() for k, v in BASELINE_RULES.items()}
    assert data["events"] == {"read": 13, "accepted": 11,
                              "rejected": {"cpr_detected": 1, "not_json": 1}}
    assert data["period"]["first"] == BASE.isoformat()
    assert data["source"] == {"file": str(history), "rules": str(ROOT / "rules"),
                              "baseline": None}
    assert len(captured.err.splitlines()) == 3
    assert captured.err.startswith("backtest: 4 events, ")


@pytest.mark.usefixtures("env")
def test_cli_backtest_refuses_unclear_sources(capsys: pytest.CaptureFixture[str]) -> None:
    """Neither --file nor --from/--to, or a time without offset: status 2 with a message."""
    assert main(["rules", "backtest", "--no-baseline"]) == 2
    assert "give --file EVENTS.jsonl, or both --from and --to" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rules", "backtest", "--from", "2026-11-01T00:00", "--to", "2026-11-02T00:00"])
    assert "has no UTC offset" in capsys.readouterr().err


def test_prepare_event_owned_changes_in_place_with_the_same_result() -> None:
    """The replay's in-place edge gives the same event; the default leaves the input alone."""
    raw = orjson.loads(SCENARIO.read_bytes().splitlines()[0])
    copy_of_raw = orjson.loads(orjson.dumps(raw))
    default = prepare_event(raw, THROWAWAY_KEY, VOCABULARY)
    assert raw == copy_of_raw
    owned = prepare_event(raw, THROWAWAY_KEY, VOCABULARY, owned=True)
    assert owned == default
    assert raw["data"]["parties"] == [{"citizen": A, "role": "primaer"}]


def test_rules_verb_has_every_lifecycle_action() -> None:
    """`advisering rules` offers every action (validate ... keygen) from one parser."""
    parser = build_parser()
    for action in ("validate", "test", "backtest", "deploy", "status"):
        extra = ["--scenario", "s"] if action == "test" else []
        assert callable(parser.parse_args(["rules", action, *extra]).handler)
    assert parser.parse_args(["rules", "validate", "x"]).dir == Path("x")
    assert parser.parse_args(["rules", "keygen", "--out", "k"]).out == Path("k")

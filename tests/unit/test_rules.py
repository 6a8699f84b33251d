"""Rule files: the shipped rules load; bad rules are refused naming file, rule id and field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from advisering.engine.rules import PLACEHOLDERS, load_rules, parse_duration, rules_from_documents
from advisering.events import Vocabulary
from advisering.yamlfiles import FileProblem, YamlFileError
from tests.unit.builders import ROOT, VOCABULARY, real_rules, rule_doc, write_rule

DANISH_LETTERS = set("æøåÆØÅ")


def problems_of(directory: Path, vocabulary: Vocabulary = VOCABULARY) -> list[FileProblem]:
    with pytest.raises(YamlFileError) as caught:
        load_rules(directory, vocabulary)
    return caught.value.problems


def only_problem(tmp_path: Path, doc: dict[str, Any], name: str = "regel.yaml") -> FileProblem:
    """Write one rule file, load the directory and return its single problem."""
    path = write_rule(tmp_path / "rules", name, doc)
    problems = problems_of(tmp_path / "rules")
    assert len(problems) == 1, problems
    assert problems[0].file == path
    return problems[0]


def test_real_rules_load_with_real_vocabulary() -> None:
    """The shipped rules/ loads: at least seven rules, each with a legal basis."""
    rules = real_rules()
    assert len(rules.rules) >= 7
    ids = [rule.id for rule in rules.rules]
    assert ids == sorted(ids)
    assert set(ids) == {p.stem for p in (ROOT / "rules").glob("*.yaml")}
    for rule in rules.rules:
        assert len(rule.legal_basis) >= 3
        assert rule.enabled


def test_real_rules_are_written_in_danish() -> None:
    """Titles and messages are Danish (Danish letters, 'Borgeren i din sag ...')."""
    rules = real_rules().by_id()
    assert rules["sanktion-til-boernesag"].title.startswith("Sanktion")
    assert rules["doedsfald-til-alle"].title == "Borgeren er afgået ved døden"
    titles = " ".join(rule.title for rule in rules.values())
    assert DANISH_LETTERS & set(titles)
    for rule in rules.values():
        assert rule.message.startswith("Borgeren i din")


def test_valid_rule_in_tmp_path_loads(tmp_path: Path) -> None:
    """The builders' rule document is valid (so each rejection below has one cause)."""
    write_rule(tmp_path, "regel.yaml", rule_doc())
    rules = load_rules(tmp_path, VOCABULARY)
    assert [r.id for r in rules.rules] == ["test-regel"]
    assert rules.rules[0].throttle_window == dt.timedelta(days=1)
    assert rules.rules[0].when.where == {"benefit.action": ("sanctioned",)}


def test_missing_legal_basis(tmp_path: Path) -> None:
    """A rule without legal_basis does not load; the problem names file, rule and field."""
    problem = only_problem(tmp_path, rule_doc(legal_basis=None))
    assert (problem.item, problem.path) == ("test-regel", "legal_basis")
    assert "missing" in problem.message


def test_unknown_field(tmp_path: Path) -> None:
    """A misspelt top-level field is an unknown field at its own path."""
    problem = only_problem(tmp_path, rule_doc(recipients="alle"))
    assert (problem.item, problem.path, problem.message) == (
        "test-regel", "recipients", "unknown field"
    )


def test_unknown_nested_field(tmp_path: Path) -> None:
    """A misspelt field inside when is reported as when.<field>."""
    doc = rule_doc()
    doc["when"]["departmnet"] = "jobcenter"
    problem = only_problem(tmp_path, doc)
    assert (problem.item, problem.path, problem.message) == (
        "test-regel", "when.departmnet", "unknown field"
    )


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    """Two files with one rule id: the later file is refused, naming the earlier one."""
    first = write_rule(tmp_path, "a.yaml", rule_doc())
    second = write_rule(tmp_path, "b.yaml", rule_doc(title="Samme id, anden fil"))
    problems = problems_of(tmp_path)
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.file, problem.item, problem.path) == (second, "test-regel", "id")
    assert str(first) in problem.message


@pytest.mark.parametrize("placeholder", ["{event.cpr}", "{citizen}", "{related.caseworker}", "{}"])
def test_unknown_placeholder(tmp_path: Path, placeholder: str) -> None:
    """A placeholder outside the whitelist is refused at message."""
    problem = only_problem(tmp_path, rule_doc(message=f"Borgeren i din sag {placeholder}."))
    assert (problem.item, problem.path) == ("test-regel", "message")
    assert "placeholder" in problem.message


@pytest.mark.parametrize(
    "trick",
    ["{related.id!r}", "{related.id:>10}", "{related.id!s:^20}", "{related.id[0]}",
     "{related.id.__class__}", "{related.id"],
)
def test_format_tricks_are_refused(tmp_path: Path, trick: str) -> None:
    """Conversions, format specs, indexing, attributes and broken braces are refused."""
    problem = only_problem(tmp_path, rule_doc(message=f"Borgeren i din sag {trick}."))
    assert (problem.item, problem.path) == ("test-regel", "message")


def test_every_placeholder_of_design_is_allowed() -> None:
    """The placeholders DESIGN.md promises are in the whitelist."""
    assert {"related.id", "related.department", "event.date", "event.type",
            "event.department"} <= PLACEHOLDERS


@pytest.mark.parametrize("throttle", ["1D", "P", "PT", "P1DT", "P0D", "one day", "P1Y"])
def test_bad_throttle(tmp_path: Path, throttle: str) -> None:
    """A throttle that is not a positive ISO 8601 duration is refused at throttle."""
    problem = only_problem(tmp_path, rule_doc(throttle=throttle))
    assert (problem.item, problem.path) == ("test-regel", "throttle")


@pytest.mark.parametrize(
    ("section", "kle"), [("when", "3"), ("when", "32.2"), ("related", "3"), ("related", "34.")]
)
def test_bad_kle_prefix(tmp_path: Path, section: str, kle: str) -> None:
    """A KLE prefix that is not whole two-digit groups is refused at <section>.kle."""
    doc = rule_doc()
    doc[section]["kle"] = kle
    problem = only_problem(tmp_path, doc)
    assert (problem.item, problem.path) == ("test-regel", f"{section}.kle")


def test_bad_status(tmp_path: Path) -> None:
    """A status that is not an SDI status is refused at when.status."""
    doc = rule_doc()
    doc["when"]["status"] = "lukket"
    problem = only_problem(tmp_path, doc)
    assert (problem.item, problem.path) == ("test-regel", "when.status")


def test_unknown_event_type(tmp_path: Path) -> None:
    """An event type outside the vocabulary is refused at when.type."""
    doc = rule_doc()
    doc["when"]["type"] = ["benefit.changed", "benefit.exploded"]
    problem = only_problem(tmp_path, doc)
    assert (problem.item, problem.path) == ("test-regel", "when.type")
    assert "benefit.exploded" in problem.message


@pytest.mark.parametrize("section", ["when", "related"])
def test_unknown_department(tmp_path: Path, section: str) -> None:
    """A department outside the vocabulary is refused at <section>.department."""
    doc = rule_doc()
    doc[section]["department"] = "skattecenter"
    problem = only_problem(tmp_path, doc)
    assert (problem.item, problem.path) == ("test-regel", f"{section}.department")
    assert "skattecenter" in problem.message


def test_declared_vocabulary_is_usable_in_rules(tmp_path: Path) -> None:
    """Types and departments declared in topics/ load; with the core vocabulary they do not."""
    doc = rule_doc(when={"type": "case.deadline-exceeded", "department": "tandpleje"},
                   related={"department": "sundhedspleje"})
    write_rule(tmp_path, "regel.yaml", doc)
    assert [r.id for r in load_rules(tmp_path, VOCABULARY).rules] == ["test-regel"]
    paths = {p.path for p in problems_of(tmp_path, Vocabulary())}
    assert paths == {"when.type", "when.department", "related.department"}


def test_origin_rule_may_not_use_related_placeholder(tmp_path: Path) -> None:
    """notify: origin with {related.id} in the message is refused at message."""
    doc = rule_doc(notify="origin", related=None,
                   message="Borgeren i din sag {related.id} har andre sager.")
    problem = only_problem(tmp_path, doc)
    assert problem.item == "test-regel"
    assert "related" in problem.message
    assert problem.path == "message"


def test_origin_rule_may_not_select_related_cases(tmp_path: Path) -> None:
    """notify: origin with a related section is refused at related."""
    doc = rule_doc(notify="origin", message="Borgeren i din sag {case.id}: {departments}.")
    problem = only_problem(tmp_path, doc)
    assert (problem.item, problem.path) == ("test-regel", "related")


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    """Problems in several files are all reported in one error."""
    a = write_rule(tmp_path, "a.yaml", rule_doc(id="regel-a", legal_basis=None))
    b = write_rule(tmp_path, "b.yaml", rule_doc(id="regel-b", throttle="1D"))
    write_rule(tmp_path, "c.yaml", rule_doc(id="regel-c"))
    problems = problems_of(tmp_path)
    assert [(p.file, p.item, p.path) for p in problems] == [
        (a, "regel-a", "legal_basis"), (b, "regel-b", "throttle"),
    ]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A file that is not YAML is reported with its file and line."""
    path = tmp_path / "brudt.yaml"
    path.write_text("id: brudt\ntitle: [ikke lukket\n", encoding="utf-8")
    problems = problems_of(tmp_path)
    assert problems[0].file == path
    assert problems[0].line is not None


def test_non_mapping_file_is_refused(tmp_path: Path) -> None:
    """A rule file holding a list is refused."""
    path = tmp_path / "liste.yaml"
    path.write_text("- id: x\n", encoding="utf-8")
    problems = problems_of(tmp_path)
    assert [(p.file, p.path) for p in problems] == [(path, "")]


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    """A rules directory that does not exist is an error, not an empty rule set."""
    problems = problems_of(tmp_path / "findes-ikke")
    assert problems[0].file == tmp_path / "findes-ikke"


def test_rules_from_documents_accepts_parsed_documents() -> None:
    """rules_from_documents checks already parsed documents (e.g. from the rules topic)."""
    rules = rules_from_documents([(Path("x.yaml"), rule_doc())], VOCABULARY, version="v7")
    assert rules.version == "v7"
    assert rules.by_id()["test-regel"].severity == "normal"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1D", dt.timedelta(days=1)),
        ("PT12H", dt.timedelta(hours=12)),
        ("P2W", dt.timedelta(weeks=2)),
        ("P1DT2H", dt.timedelta(days=1, hours=2)),
        ("PT30M", dt.timedelta(minutes=30)),
        ("PT1H30M15S", dt.timedelta(hours=1, minutes=30, seconds=15)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    """ISO 8601 durations of weeks, days, hours, minutes and seconds parse."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1D", "P", "PT", "P1DT", "P0D", "PT0S", "", "p1d", "P1M1W"])
def test_parse_duration_rejects(text: str) -> None:
    """Text that is not a positive ISO 8601 duration is refused."""
    with pytest.raises(ValueError, match=r"duration|longer than zero"):
        parse_duration(text)

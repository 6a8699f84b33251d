"""`advisering rules validate`: every problem, each with file, line and field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisering.cli.main import main
from advisering.kafka.topics import load_topic_specs
from advisering.rulebook.validate import ValidationReport, validate_directory
from advisering.yamlfiles import FileProblem, YamlFileError, read_yaml_document
from tests.unit.builders import ROOT, VOCABULARY

# A valid rule, written by hand so every line number below is known.
RULE = """\
id: test-regel
title: Testregel for en sanktion
legal_basis: "Forvaltningsloven § 28"
severity: normal
when:
  type: benefit.changed
  department: jobcenter
  where:
    benefit.action: [sanctioned]
notify: related
related:
  department: boern-familie
  kle: "34"
message: >-
  Borgeren i din sag {related.id} er sanktioneret ({event.date}).
throttle: P1D
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def validate(directory: Path) -> ValidationReport:
    return validate_directory(directory, VOCABULARY)


def only(directory: Path) -> FileProblem:
    problems = validate(directory).problems
    assert len(problems) == 1, problems
    return problems[0]


def where(problem: FileProblem) -> tuple[str, int | None, str]:
    return (problem.file.name, problem.line, problem.path)


def test_the_hand_written_rule_is_valid(tmp_path: Path) -> None:
    """The base rule of these tests validates, so each test below has exactly one cause."""
    write(tmp_path, "regel.yaml", RULE)
    report = validate(tmp_path)
    assert report.ok
    assert report.summary() == f"{tmp_path}: 1 rules in 1 files, no problems."


def test_unknown_field_at_top_level(tmp_path: Path) -> None:
    """A misspelt top-level field: its own line and path, and the name it was meant to be."""
    write(tmp_path, "regel.yaml", RULE.replace("severity: normal", "severty: normal"))
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 4, "severty")
    assert problem.message == "unknown field"
    assert problem.hint == "did you mean 'severity'?"


def test_unknown_nested_field(tmp_path: Path) -> None:
    """A misspelt field inside when is reported at when.<field> on its line."""
    write(tmp_path, "regel.yaml", RULE.replace("  department: jobcenter",
                                               "  departmnet: jobcenter"))
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 7, "when.departmnet")
    assert problem.hint == "did you mean 'department'?"


def test_missing_legal_basis_names_the_mapping_that_lacks_it(tmp_path: Path) -> None:
    """No legal_basis: the line where the rule's mapping starts (after a comment)."""
    text = "# Regel uden hjemmel\n" + RULE.replace('legal_basis: "Forvaltningsloven § 28"\n', "")
    write(tmp_path, "regel.yaml", text)
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 2, "legal_basis")
    assert problem.message == "required field is missing"


def test_missing_nested_field_names_its_section(tmp_path: Path) -> None:
    """when without type: the line of when, path when.type."""
    write(tmp_path, "regel.yaml", RULE.replace("  type: benefit.changed\n", ""))
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 5, "when.type")


def test_unknown_placeholder(tmp_path: Path) -> None:
    """A placeholder outside the whitelist: the message's line, and the allowed ones listed."""
    write(tmp_path, "regel.yaml", RULE.replace("({event.date})", "({event.cpr})"))
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 14, "message")
    assert problem.message.startswith("unknown placeholder {event.cpr}; allowed: ")
    assert "{related.id}" in problem.message


def test_unknown_event_type_in_a_list_names_the_item_line(tmp_path: Path) -> None:
    """An unknown type in a block list is reported on the line of that item."""
    text = RULE.replace("  type: benefit.changed\n",
                        "  type:\n    - benefit.changed\n    - benefit.exploded\n")
    write(tmp_path, "regel.yaml", text)
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 8, "when.type")
    assert problem.message == "unknown event type 'benefit.exploded'"


@pytest.mark.parametrize(
    ("old", "new", "line", "path"),
    [("  department: jobcenter", "  department: skattecenter", 7, "when.department"),
     ("  department: boern-familie", "  department: skattecenter", 12, "related.department")],
)
def test_unknown_department(tmp_path: Path, old: str, new: str, line: int, path: str) -> None:
    """A department outside the vocabulary: its line and section."""
    write(tmp_path, "regel.yaml", RULE.replace(old, new))
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", line, path)
    assert problem.message == "unknown department 'skattecenter'"


def test_bad_kle_prefix(tmp_path: Path) -> None:
    """A KLE prefix that is not whole two-digit groups: related.kle on its line."""
    write(tmp_path, "regel.yaml", RULE.replace('kle: "34"', 'kle: "3"'))
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 13, "related.kle")
    assert "whole dot-groups" in problem.message


def test_bad_iso_duration(tmp_path: Path) -> None:
    """A throttle that is not an ISO 8601 duration: throttle on its line, with an example."""
    write(tmp_path, "regel.yaml", RULE.replace("throttle: P1D", "throttle: 1 dag"))
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 16, "throttle")
    assert problem.message == "'1 dag' is not an ISO 8601 duration like P1D, PT12H or P2W"


def test_duplicate_id_names_the_line_of_the_id_in_the_second_file(tmp_path: Path) -> None:
    """Two files with one id: the second file, the line of its id, and the first file named."""
    first = write(tmp_path, "a.yaml", RULE)
    write(tmp_path, "b.yaml", "# En kopi\ntitle: Kopi\n" + RULE.replace(
        "title: Testregel for en sanktion\n", ""))
    problem = only(tmp_path)
    assert where(problem) == ("b.yaml", 3, "id")
    assert problem.message == f"duplicate rule id, also in {first}"


def test_yaml_syntax_error(tmp_path: Path) -> None:
    """Broken YAML: the file and the line the parser stopped at."""
    write(tmp_path, "brudt.yaml", RULE.replace("title: Testregel for en sanktion",
                                                "title: [Testregel"))
    problem = only(tmp_path)
    assert (problem.file.name, problem.path) == ("brudt.yaml", "")
    assert problem.line == 3
    assert problem.message.startswith("not valid YAML")


def test_key_given_twice(tmp_path: Path) -> None:
    """A key given twice (YAML would silently keep the last): the second one's line."""
    write(tmp_path, "regel.yaml", RULE + "throttle: P2D\n")
    problem = only(tmp_path)
    assert where(problem) == ("regel.yaml", 17, "throttle")
    assert problem.message == "key given twice (first on line 16); only the last one counts"


def test_every_problem_in_every_file_at_once(tmp_path: Path) -> None:
    """Schema, vocabulary and duplicate-id problems of several files come in one report."""
    write(tmp_path, "a.yaml", RULE.replace("  department: jobcenter", "  department: skat")
          .replace("throttle: P1D", "throttle: 1D").replace("severity", "severty"))
    write(tmp_path, "b.yaml", RULE.replace("({event.date})", "({citizen})"))
    write(tmp_path, "c.yaml", "id: [\n")
    write(tmp_path, "d.yaml", RULE.replace("test-regel", "anden-regel"))
    report = validate(tmp_path)
    assert [where(p) for p in report.problems] == [
        ("a.yaml", 4, "severty"),
        ("a.yaml", 7, "when.department"),
        ("a.yaml", 16, "throttle"),
        ("b.yaml", 1, "id"),
        ("b.yaml", 14, "message"),
        ("c.yaml", 2, ""),
    ]
    assert report.summary() == f"{tmp_path}: 6 problem(s) in 3 of 4 file(s)."


def test_missing_or_empty_directory_is_a_problem(tmp_path: Path) -> None:
    """A directory that does not exist, or holds no rule file, does not validate."""
    assert only(tmp_path / "findes-ikke").message == "rules directory not found"
    (tmp_path / "tom").mkdir()
    assert only(tmp_path / "tom").message == "no rule files (*.yaml) in this directory"


def test_line_index_resolves_dotted_keys_and_list_items(tmp_path: Path) -> None:
    """Keys with dots (where paths) and [n] indices resolve; a missing key gives its parent."""
    path = write(tmp_path, "x.yaml", RULE.replace(
        "    benefit.action: [sanctioned]",
        "    benefit.action:\n      - sanctioned\n      - stopped"))
    document = read_yaml_document(path)
    assert document.line_of_dotted("when.where.benefit.action") == 9
    assert document.line_of_dotted("when.where.benefit.action[1]") == 11
    assert document.line_of(("when", "where", "benefit.action", 1)) == 11
    assert document.line_of(("related", "status")) == 13
    assert document.line_of(()) == 1


def test_topic_files_get_lines_too(tmp_path: Path) -> None:
    """The line finding lives in yamlfiles: a topic file's unknown field has its line."""
    topics = tmp_path / "topics"
    topics.mkdir()
    for source in (ROOT / "topics").glob("*.yaml"):
        (topics / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    audit = topics / "audit.yaml"
    audit.write_text(audit.read_text(encoding="utf-8") + "partitons: 3\n", encoding="utf-8")
    with pytest.raises(YamlFileError) as caught:
        load_topic_specs(topics)
    problem = caught.value.problems[0]
    assert (problem.file, problem.path, problem.hint) == (audit, "partitons",
                                                          "did you mean 'partitions'?")
    assert problem.line == len(audit.read_text(encoding="utf-8").splitlines())


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's settings: the shipped rules and topics, wherever pytest runs."""
    monkeypatch.setenv("ADVISERING_RULES_DIR", str(ROOT / "rules"))
    monkeypatch.setenv("ADVISERING_TOPICS_DIR", str(ROOT / "topics"))


@pytest.mark.usefixtures("env")
def test_cli_validate_default_dir_prints_one_line_and_exits_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`rules validate` without DIR checks ADVISERING_RULES_DIR: one summary line, status 0."""
    assert main(["rules", "validate"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{ROOT / 'rules'}: 8 rules in 8 files, no problems."]


@pytest.mark.usefixtures("env")
def test_cli_validate_lists_every_problem_and_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """`rules validate DIR` prints file:line [rule] path: message per problem, then a summary."""
    write(tmp_path, "a.yaml", RULE.replace("severity", "severty"))
    write(tmp_path, "b.yaml", RULE.replace("test-regel", "b-regel").replace("P1D", "P1X"))
    assert main(["rules", "validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{tmp_path / 'a.yaml'}:4 [test-regel] severty: unknown field "
        "(did you mean 'severity'?)",
        f"{tmp_path / 'b.yaml'}:16 [b-regel] throttle: 'P1X' is not an ISO 8601 duration "
        "like P1D, PT12H or P2W",
        f"{tmp_path}: 2 problem(s) in 2 of 2 file(s).",
    ]

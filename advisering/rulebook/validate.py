"""`advisering rules validate`: every problem of a rule directory, with file, line and field.

The check is :func:`~advisering.engine.rules.load_rules` itself (the worker and
``rules deploy`` load rules the same way), so validation can never pass a set
the worker would refuse, or the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from advisering.engine.rules import load_rules
from advisering.events import Vocabulary
from advisering.yamlfiles import FileProblem, YamlFileError, yaml_files


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one rule directory."""

    directory: Path
    files: int
    rules: int
    problems: tuple[FileProblem, ...]

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def summary(self) -> str:
        """One line for the operator: the counts, or how many problems in how many files."""
        if self.ok:
            return f"{self.directory}: {self.rules} rules in {self.files} files, no problems."
        bad = len({p.file for p in self.problems})
        return (f"{self.directory}: {len(self.problems)} problem(s) in {bad} of "
                f"{self.files} file(s).")


def validate_directory(directory: Path, vocabulary: Vocabulary) -> ValidationReport:
    """Load ``directory`` like the worker does and collect every problem instead of raising."""
    if not directory.is_dir():
        problem = FileProblem(directory, "", "rules directory not found")
        return ValidationReport(directory, 0, 0, (problem,))
    files = yaml_files(directory)
    if not files:
        problem = FileProblem(directory, "", "no rule files (*.yaml) in this directory")
        return ValidationReport(directory, 0, 0, (problem,))
    try:
        rules = load_rules(directory, vocabulary)
    except YamlFileError as exc:
        return ValidationReport(directory, len(files), 0, tuple(exc.problems))
    return ValidationReport(directory, len(files), len(rules.rules), ())

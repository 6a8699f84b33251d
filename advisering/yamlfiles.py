"""Loading the operators' YAML files with errors that name the file and the field.

Every YAML file advisering reads has a pydantic schema; this module turns a
pydantic ``ValidationError`` into messages an operator can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


@dataclass(frozen=True)
class FileProblem:
    """One problem in one file: where it is and what is wrong."""

    file: Path
    path: str
    message: str
    line: int | None = None
    item: str | None = None  # for example the rule id

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        item = f" [{self.item}]" if self.item else ""
        field = f" {self.path}:" if self.path else ""
        return f"{where}{item}{field} {self.message}"


class YamlFileError(ValueError):
    """One or more problems in operator files; ``problems`` has each of them."""

    def __init__(self, problems: list[FileProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def read_yaml(file: Path) -> Any:
    """Parse one YAML document, reporting syntax errors with file and line."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError([FileProblem(file, "", f"cannot read: {exc.strerror}")]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise YamlFileError(
            [FileProblem(file, "", f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]
        ) from exc


def problems_from_validation(
    file: Path, error: ValidationError, item: str | None = None
) -> list[FileProblem]:
    """One FileProblem per pydantic error, with a dotted field path."""
    problems = []
    for detail in error.errors():
        path = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            message = "unknown field"
        elif detail["type"] == "missing":
            message = "required field is missing"
        problems.append(FileProblem(file, path, message, item=item))
    return problems

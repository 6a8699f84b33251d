"""Loading the operators' YAML files with errors that name the file, the line and the field.

Every YAML file advisering reads has a pydantic schema; this module turns a
pydantic ``ValidationError`` into messages an operator can act on. The
documents are composed node by node first, so each problem can also carry the
line it is on: an operator with thirty rule files needs ``rules/x.yaml:12``,
not just ``when.type``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

Segment = str | int
_INDEXED = re.compile(r"^(?P<name>[^\[\]]*)(?P<indices>(?:\[\d+\])*)$")
_MAX_DEPTH = 64  # aliases can make a YAML graph cyclic; rule files are never this deep


@dataclass(frozen=True)
class FileProblem:
    """One problem in one file: where it is and what is wrong."""

    file: Path
    path: str
    message: str
    line: int | None = None
    item: str | None = None  # for example the rule id
    hint: str | None = None  # for example "did you mean 'department'?"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        item = f" [{self.item}]" if self.item else ""
        field_ = f" {self.path}:" if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{item}{field_} {self.message}{hint}"


class YamlFileError(ValueError):
    """One or more problems in operator files; ``problems`` has each of them."""

    def __init__(self, problems: list[FileProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class LineIndex:
    """The 1-based line of every mapping key and list item of one document, by path.

    A path is a tuple of mapping keys (their text) and list indices, as in a
    pydantic error's ``loc``. A path that does not exist (a missing field)
    resolves to its longest existing prefix: the mapping that lacks the field.
    """

    lines: dict[tuple[Segment, ...], int] = field(default_factory=dict)
    scalars: dict[tuple[Segment, ...], str] = field(default_factory=dict)
    duplicates: list[tuple[tuple[Segment, ...], int, int]] = field(default_factory=list)

    @classmethod
    def of(cls, node: yaml.Node | None) -> LineIndex:
        """The index of a composed YAML node (empty for an empty document)."""
        index = cls()
        if node is not None:
            index.lines[()] = node.start_mark.line + 1
            index._walk(node, (), 0)
        return index

    def _walk(self, node: yaml.Node, path: tuple[Segment, ...], depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                child = (*path, key)
                line = key_node.start_mark.line + 1
                if child in self.lines:  # YAML keeps the last value: so does the index
                    self.duplicates.append((child, self.lines[child], line))
                self.lines[child] = line
                self._walk(value_node, child, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for position, item_node in enumerate(node.value):
                child = (*path, position)
                self.lines[child] = item_node.start_mark.line + 1
                self._walk(item_node, child, depth + 1)
        elif isinstance(node, yaml.ScalarNode):
            self.scalars[path] = str(node.value)

    def line_of(self, loc: Sequence[Segment], value: object = None) -> int | None:
        """The line of ``loc`` (or of the mapping lacking it); of ``value`` in a list there."""
        best: tuple[Segment, ...] = ()
        for part in loc:
            for candidate in _segment_candidates(part):
                if (*best, candidate) in self.lines:
                    best = (*best, candidate)
                    break
            else:
                break
        if value is not None and len(best) == len(loc):
            position = 0
            while (*best, position) in self.lines:
                if self.scalars.get((*best, position)) == str(value):
                    return self.lines[(*best, position)]
                position += 1
        return self.lines.get(best)

    def line_of_dotted(self, path: str, value: object = None) -> int | None:
        """The line of a dotted path such as ``when.where.benefit.action`` or ``a.b[2]``.

        Keys may themselves contain dots (the ``where`` paths do), so the
        longest key that exists at each level wins.
        """
        return self.line_of(self.resolve(path), value)

    def resolve(self, path: str) -> tuple[Segment, ...]:
        """The dotted path as index segments, the longest existing key winning at each level."""
        parts = path.split(".") if path else []
        resolved: tuple[Segment, ...] = ()
        start = 0
        while start < len(parts):
            for stop in range(len(parts), start, -1):
                match = _INDEXED.match(".".join(parts[start:stop]))
                if match is None:
                    continue
                indices = tuple(int(i) for i in re.findall(r"\[(\d+)\]", match["indices"]))
                name: tuple[Segment, ...] = (match["name"],) if match["name"] else ()
                if (*resolved, *name) in self.lines or stop == start + 1:
                    resolved = (*resolved, *name, *indices)
                    start = stop
                    break
        return resolved


def _segment_candidates(part: Segment) -> tuple[Segment, ...]:
    # An int in a pydantic loc is a list index, or an int key YAML turned into text.
    return (part, str(part)) if isinstance(part, int) else (part,)


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: its value, where each part of it is, and key problems."""

    file: Path
    value: Any
    lines: LineIndex

    def duplicate_key_problems(self, item: str | None = None) -> list[FileProblem]:
        """A key given twice in one mapping: YAML keeps the last silently, so say so."""
        return [
            FileProblem(self.file, ".".join(str(p) for p in path),
                        f"key given twice (first on line {first}); only the last one counts",
                        line, item=item)
            for path, first, line in self.lines.duplicates
        ]

    def line_of(self, loc: Sequence[Segment], value: object = None) -> int | None:
        """The line of a pydantic error location (see :meth:`LineIndex.line_of`)."""
        return self.lines.line_of(loc, value)

    def line_of_dotted(self, path: str, value: object = None) -> int | None:
        """The line of a dotted path (see :meth:`LineIndex.line_of_dotted`)."""
        return self.lines.line_of_dotted(path, value)


def yaml_files(directory: Path) -> list[Path]:
    """The files of a rules or topics directory: ``*.yaml`` then ``*.yml``, each sorted."""
    return sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))


def read_yaml_document(file: Path) -> YamlDocument:
    """Parse one YAML document with the line of each part; syntax errors name file and line."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError([FileProblem(file, "", f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise YamlFileError([FileProblem(file, "", "not UTF-8 text")]) from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise YamlFileError(
            [FileProblem(file, "", f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]
        ) from exc
    finally:
        loader.dispose()
    return YamlDocument(file, value, LineIndex.of(node))


def read_yaml(file: Path) -> Any:
    """Parse one YAML document, reporting syntax errors with file and line."""
    return read_yaml_document(file).value


def problems_from_validation(
    file: Path, error: ValidationError, item: str | None = None,
    lines: LineIndex | YamlDocument | None = None, model: type[BaseModel] | None = None,
) -> list[FileProblem]:
    """One FileProblem per pydantic error, with a dotted field path and, given ``lines``, a line.

    With ``model`` an unknown field also gets a hint: the closest allowed name.
    """
    problems = []
    for detail in error.errors():
        loc = tuple(detail["loc"])
        path = ".".join(str(part) for part in loc)
        message = detail["msg"].removeprefix("Value error, ")
        hint = None
        if detail["type"] == "extra_forbidden":
            message = "unknown field"
            hint = _field_hint(model, loc)
        elif detail["type"] == "missing":
            message = "required field is missing"
        line = lines.line_of(loc) if lines is not None else None
        problems.append(FileProblem(file, path, message, line, item=item, hint=hint))
    return problems


def _field_hint(model: type[BaseModel] | None, loc: tuple[Segment, ...]) -> str | None:
    """'did you mean ...?' for a misspelt field, else the fields allowed where it stands."""
    current: Any = model
    for part in loc[:-1]:
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return None
        current = info.annotation
    fields = sorted(getattr(current, "model_fields", {}))
    if not fields:
        return None
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "allowed here: " + ", ".join(fields)

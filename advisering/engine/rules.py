"""Advisory rules: the pydantic schema of ``rules/*.yaml`` and its loader.

A rule says which event triggers it (``when``), whom it tells (``notify`` and
``related``), what it may say (``message``, with a fixed whitelist of
placeholders checked at load time) and on which legal basis. Errors name the
file and the rule id so an operator can find them.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from advisering.events import KLE_PATTERN, SDI_STATUSES, Vocabulary
from advisering.yamlfiles import (
    FileProblem,
    YamlDocument,
    YamlFileError,
    problems_from_validation,
    read_yaml_document,
    yaml_files,
)

PLACEHOLDERS = frozenset({
    "related.id", "related.department", "related.kle", "related.source",
    "event.date", "event.type", "event.department", "event.source",
    "case.id", "case.department", "departments", "rule.title",
})
_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)S)?)?)\Z"
)


def parse_duration(text: str) -> dt.timedelta:
    """An ISO 8601 duration of weeks, days, hours, minutes and seconds (P1D, PT12H, P2W)."""
    match = _DURATION.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration like P1D, PT12H or P2W")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    duration = dt.timedelta(**parts)
    if duration <= dt.timedelta(0):
        raise ValueError(f"{text!r} must be longer than zero")
    return duration


def _as_tuple(value: object) -> object:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(value)
    return value


def _check_kle(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    for prefix in prefixes:
        if not KLE_PATTERN.match(prefix):
            raise ValueError(f"KLE prefix {prefix!r} must be whole dot-groups, like 32 or 32.24")
    return prefixes


class When(BaseModel):
    """What the triggering event must be; every given condition must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: tuple[str, ...] = Field(min_length=1)
    department: tuple[str, ...] = ()
    kle: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    previous_status: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    where: dict[str, tuple[str | int | bool, ...]] = {}

    _tuples = field_validator("type", "department", "kle", "status", "previous_status",
                              "source", mode="before")(_as_tuple)

    @field_validator("where", mode="before")
    @classmethod
    def _where_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: (v if isinstance(v, list) else [v]) for k, v in value.items()}
        return value

    @field_validator("kle")
    @classmethod
    def _kle(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_kle(value)

    @field_validator("status", "previous_status")
    @classmethod
    def _status(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for status in value:
            if status not in SDI_STATUSES:
                raise ValueError(f"{status!r} is not an SDI status ({', '.join(SDI_STATUSES)})")
        return value


class Related(BaseModel):
    """Which of the citizen's other open cases a ``notify: related`` rule reaches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    department: tuple[str, ...] = ()
    kle: tuple[str, ...] = ()
    status: tuple[str, ...] = ()

    _tuples = field_validator("department", "kle", "status", mode="before")(_as_tuple)

    @field_validator("kle")
    @classmethod
    def _kle(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_kle(value)


class Rule(BaseModel):
    """One advisory rule, as an operator writes it in ``rules/<id>.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,80}$")
    title: str = Field(min_length=3, max_length=200)
    description: str | None = None
    legal_basis: str = Field(min_length=3)
    severity: Literal["info", "normal", "high"] = "normal"
    when: When
    notify: Literal["related", "origin"]
    related: Related = Related()
    message: str = Field(min_length=3, max_length=1000)
    throttle: str | None = None
    allow_sensitive: bool = False
    enabled: bool = True

    @field_validator("throttle")
    @classmethod
    def _throttle(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("message")
    @classmethod
    def _placeholders(cls, value: str, info: ValidationInfo) -> str:
        used = message_fields(value)
        for name in used:
            if name not in PLACEHOLDERS:
                allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                raise ValueError(f"unknown placeholder {{{name}}}; allowed: {allowed}")
        notify = info.data.get("notify")
        if notify == "origin" and any(n.startswith("related.") for n in used):
            raise ValueError("a notify: origin rule cannot use {related.*}; use {departments}")
        if notify == "related" and {"departments", "case.id", "case.department"} & set(used):
            raise ValueError("{departments} and {case.*} are for notify: origin rules")
        return value

    @property
    def throttle_window(self) -> dt.timedelta | None:
        """The ``throttle`` as a duration, or None when the rule is not throttled."""
        return parse_duration(self.throttle) if self.throttle else None


def message_fields(message: str) -> list[str]:
    """The placeholder names in a message; format tricks (conversions, specs) are refused."""
    names = []
    try:
        parsed = list(string.Formatter().parse(message))
    except ValueError as exc:
        raise ValueError(f"message is not a valid template: {exc}") from exc
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} may not have a format spec or conversion")
        names.append(name)
    return names


@dataclass(frozen=True)
class RuleSet:
    """A loaded, checked set of rules, in id order."""

    rules: tuple[Rule, ...]
    version: str = "local"

    def by_id(self) -> dict[str, Rule]:
        """The rules keyed by their id."""
        return {rule.id: rule for rule in self.rules}


def _names(raw: dict[str, Any], section: str, key: str) -> list[str]:
    part = raw.get(section)
    value = part.get(key) if isinstance(part, dict) else None
    values = value if isinstance(value, list | tuple) else [value]
    return [v for v in values if isinstance(v, str)]


def vocabulary_problems(raw: dict[str, Any], vocabulary: Vocabulary) -> list[tuple[str, str, str]]:
    """(path, message, offending value) for names outside the vocabulary in a rule document.

    Works on the plain document, so a rule that also has schema errors still
    gets its unknown event types and departments reported in the same run.
    """
    problems = []
    for event_type in _names(raw, "when", "type"):
        if event_type not in vocabulary.event_types:
            problems.append(("when.type", f"unknown event type {event_type!r}", event_type))
    for section in ("when", "related"):
        for department in _names(raw, section, "department"):
            if department not in vocabulary.departments:
                problems.append((f"{section}.department", f"unknown department {department!r}",
                                 department))
    related = raw.get("related")
    if raw.get("notify") == "origin" and related and (
        not isinstance(related, dict) or any(related.values())
    ):
        problems.append(("related", "a notify: origin rule has no related cases to select", ""))
    return problems


def load_rules(directory: Path, vocabulary: Vocabulary) -> RuleSet:
    """Load every ``*.yaml`` rule in ``directory``; all problems are reported together."""
    files = yaml_files(directory)
    if not directory.is_dir():
        raise YamlFileError([FileProblem(directory, "", "rules directory not found")])
    return rules_from_documents(((f, _read(f)) for f in files), vocabulary)


def _read(file: Path) -> YamlDocument | YamlFileError:
    try:
        return read_yaml_document(file)
    except YamlFileError as exc:
        return exc


def rules_from_documents(
    documents: Iterable[tuple[Path, Any]], vocabulary: Vocabulary, version: str = "local"
) -> RuleSet:
    """Check rule documents; raise YamlFileError with every problem in every file.

    A document is a parsed value (for example from the rules topic), a
    :class:`YamlDocument` (read from a file: problems then carry their line) or
    the YamlFileError reading it raised. Schema, vocabulary and duplicate-id
    problems are all collected, so one run shows an operator everything to fix.
    """
    problems: list[FileProblem] = []
    rules: dict[str, Rule] = {}
    origin: dict[str, Path] = {}
    for file, document in documents:
        if isinstance(document, YamlFileError):
            problems.extend(document.problems)
            continue
        found = _check_document(file, document, vocabulary, origin, rules)
        problems.extend(sorted(found, key=lambda p: p.line or 0))
    if problems:
        raise YamlFileError(problems)
    return RuleSet(tuple(rules[k] for k in sorted(rules)), version)


def _check_document(
    file: Path, document: Any, vocabulary: Vocabulary, origin: dict[str, Path],
    rules: dict[str, Rule],
) -> list[FileProblem]:
    """Every problem of one document; a rule without any is added to ``rules``."""
    lines = document if isinstance(document, YamlDocument) else None
    raw = document.value if isinstance(document, YamlDocument) else document
    if not isinstance(raw, dict):
        return [FileProblem(file, "", "a rule file must be a mapping (id: ..., title: ..., ...)",
                            lines.line_of(()) if lines else None)]
    rule_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    problems = lines.duplicate_key_problems(rule_id) if lines else []
    rule = None
    try:
        rule = Rule.model_validate(raw)
    except ValidationError as exc:
        problems.extend(problems_from_validation(file, exc, item=rule_id, lines=lines,
                                                 model=Rule))
    flagged = {p.path for p in problems}
    for path, message, value in vocabulary_problems(raw, vocabulary):
        if path not in flagged:
            line = lines.line_of_dotted(path, value or None) if lines else None
            problems.append(FileProblem(file, path, message, line, item=rule_id))
    if rule_id is not None:
        if rule_id in origin:
            line = lines.line_of(("id",)) if lines else None
            problems.append(FileProblem(file, "id", f"duplicate rule id, also in {origin[rule_id]}",
                                        line, item=rule_id))
        else:
            origin[rule_id] = file
    if rule is not None and not problems:
        rules[rule.id] = rule
    return problems

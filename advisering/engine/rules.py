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
from advisering.yamlfiles import FileProblem, YamlFileError, problems_from_validation, read_yaml

PLACEHOLDERS = frozenset({
    "related.id", "related.department", "related.kle", "related.source",
    "event.date", "event.type", "event.department", "event.source",
    "case.id", "case.department", "departments", "rule.title",
})
_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)S)?)?)\Z"
)

OneOrMany = str | list[str]


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
        return {rule.id: rule for rule in self.rules}


def check_vocabulary(rule: Rule, vocabulary: Vocabulary) -> list[tuple[str, str]]:
    """(path, message) for each event type or department the municipality does not know."""
    problems = []
    for event_type in rule.when.type:
        if event_type not in vocabulary.event_types:
            problems.append(("when.type", f"unknown event type {event_type!r}"))
    for path, departments in (("when.department", rule.when.department),
                              ("related.department", rule.related.department)):
        for department in departments:
            if department not in vocabulary.departments:
                problems.append((path, f"unknown department {department!r}"))
    if rule.notify == "origin" and rule.related != Related():
        problems.append(("related", "a notify: origin rule has no related cases to select"))
    return problems


def load_rules(directory: Path, vocabulary: Vocabulary) -> RuleSet:
    """Load every ``*.yaml`` rule in ``directory``; all problems are reported together."""
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not directory.is_dir():
        raise YamlFileError([FileProblem(directory, "", "rules directory not found")])
    return rules_from_documents(((f, _read(f)) for f in files), vocabulary)


def _read(file: Path) -> Any:
    try:
        return read_yaml(file)
    except YamlFileError as exc:
        return exc


def rules_from_documents(
    documents: Iterable[tuple[Path, Any]], vocabulary: Vocabulary, version: str = "local"
) -> RuleSet:
    """Check parsed rule documents; raise YamlFileError with every problem found."""
    problems: list[FileProblem] = []
    rules: dict[str, Rule] = {}
    origin: dict[str, Path] = {}
    for file, raw in documents:
        if isinstance(raw, YamlFileError):
            problems.extend(raw.problems)
            continue
        rule_id = str(raw.get("id", "")) if isinstance(raw, dict) else None
        if not isinstance(raw, dict):
            problems.append(FileProblem(file, "", "a rule file must be a mapping"))
            continue
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            problems.extend(problems_from_validation(file, exc, item=rule_id))
            continue
        vocab_problems = check_vocabulary(rule, vocabulary)
        if vocab_problems:
            problems.extend(FileProblem(file, p, m, item=rule.id) for p, m in vocab_problems)
            continue
        if rule.id in rules:
            problems.append(FileProblem(file, "id", f"duplicate rule id, also in {origin[rule.id]}",
                                        item=rule.id))
            continue
        rules[rule.id] = rule
        origin[rule.id] = file
    if problems:
        raise YamlFileError(problems)
    return RuleSet(tuple(rules[k] for k in sorted(rules)), version)

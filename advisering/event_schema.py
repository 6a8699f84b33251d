"""What ``data`` may hold beyond the case and the parties, per event type.

Why: a field nobody declared is room to hide anything (free text, a CPR
number in disguise, case content). ``data`` holds the core ``case`` and
``parties`` (checked by the :class:`~advisering.events.EventData` model), the
core ``benefit.action`` of ``benefit.changed`` (DESIGN.md), and only those
extension fields the municipality declares in the vocabulary of
``topics/case-events.yaml``, each with a type.

The extension fields stay plain JSON values on the event (``model_extra``),
so the matcher and the trusted decode read them as they always did; this
module only decides whether they may be there. The schemas are pydantic
models built once per event type when the vocabulary is made, and an event
pays one dict lookup (and, when it carries extension fields, a validation of
those few values), never a second walk over the whole event.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
    create_model,
)

FieldKind = Literal["string", "integer", "number", "boolean", "date", "datetime"]
FIELD_KINDS: tuple[str, ...] = ("string", "integer", "number", "boolean", "date", "datetime")
ANY_TYPE = "*"  # an extension field of every event type
CORE_FIELDS = frozenset(("case", "parties"))  # the EventData model's own fields
DEFAULT_MAX_LENGTH = 128
MAX_MAX_LENGTH = 1024
MAX_PATH_SEGMENTS = 4
SEGMENT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_INTEGER = 2**53  # JSON numbers beyond this lose precision in most readers


class DataField(BaseModel):
    """One declared field of ``data``: where it is, for which event type, and its type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: str  # an event type, or "*" for every type
    path: tuple[str, ...]  # ("benefit", "action") is data.benefit.action
    kind: FieldKind = "string"
    enum: tuple[str, ...] = ()
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=1, le=MAX_MAX_LENGTH)
    required: bool = False

    @property
    def dotted(self) -> str:
        """The path as the rules and messages write it: ``benefit.action``."""
        return ".".join(self.path)


def _check_date(value: str) -> str:
    # Own messages: the parser's would repeat the value, and no error echoes a value.
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a calendar date (YYYY-MM-DD)") from None
    return value


def _check_datetime(value: str) -> str:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError("a date-time needs a UTC offset")
    return value


_DATE = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$"),
                  AfterValidator(_check_date)]
_DATETIME = Annotated[str, StringConstraints(max_length=40), AfterValidator(_check_datetime)]
_INTEGER = Annotated[StrictInt, Field(ge=-MAX_INTEGER, le=MAX_INTEGER)]
_NUMBER = Annotated[StrictFloat, Field(allow_inf_nan=False)]  # an integer is a number too


def _annotation(spec: DataField) -> Any:
    """The pydantic type of one declared field (strict: the value is kept as it came)."""
    if spec.enum:
        return Literal[spec.enum]
    if spec.kind == "string":
        return Annotated[str, StringConstraints(max_length=spec.max_length)]
    if spec.kind == "integer":
        return _INTEGER
    if spec.kind == "number":
        return _NUMBER
    if spec.kind == "boolean":
        return StrictBool
    if spec.kind == "date":
        return _DATE
    return _DATETIME


_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def _model(name: str, fields: Iterable[DataField], prefix: tuple[str, ...]) -> type[BaseModel]:
    """A model for the object at ``prefix``: its scalar fields and its nested objects."""
    scalars: dict[str, DataField] = {}
    nested: dict[str, list[DataField]] = {}
    for spec in fields:
        head = spec.path[len(prefix)]
        if len(spec.path) == len(prefix) + 1:
            scalars[head] = spec
        else:
            nested.setdefault(head, []).append(spec)
    definitions: dict[str, Any] = {}
    for key, spec in scalars.items():
        annotation = _annotation(spec)
        definitions[key] = (annotation, ...) if spec.required else (annotation | None, None)
    for key, children in nested.items():
        child = _model(f"{name}_{key}", children, (*prefix, key))
        required = any(spec.required for spec in children)
        definitions[key] = (child, ...) if required else (child | None, None)
    model: type[BaseModel] = create_model(name, __config__=_STRICT, **definitions)
    return model


@dataclass(frozen=True)
class DataSchema:
    """The extension fields one event type may carry, compiled once."""

    model: type[BaseModel]
    required: bool  # some field is required: an event without extension fields is checked too

    def problems(self, extra: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """(kind, path under data, message) of every problem; unknown fields first."""
        try:
            self.model.model_validate(extra)
        except ValidationError as error:
            found = [(detail["type"], ".".join(["data", *map(str, detail["loc"])]),
                      "unknown field" if detail["type"] == "extra_forbidden"
                      else detail["msg"].removeprefix("Value error, "))
                     for detail in error.errors(include_url=False, include_input=False)]
            return sorted(found, key=lambda problem: problem[0] != "extra_forbidden")
        return []


@functools.lru_cache(maxsize=32)
def compile_schemas(
    fields: tuple[DataField, ...], event_types: frozenset[str]
) -> Mapping[str, DataSchema]:
    """One schema per event type, with the fields of that type and those of every type.

    Cached: vocabularies made from the same declarations share their schemas
    (and so compare equal), and making one again costs nothing.
    """
    schemas: dict[str, DataSchema] = {}
    for event_type in sorted(event_types):
        mine = [spec for spec in fields if spec.event_type in (event_type, ANY_TYPE)]
        model = _model(f"Data_{re.sub(r'[^a-zA-Z0-9]', '_', event_type)}", mine, ())
        schemas[event_type] = DataSchema(model, any(spec.required for spec in mine))
    return MappingProxyType(schemas)


def field_conflicts(fields: Iterable[DataField]) -> list[str]:
    """Why a set of declared fields cannot be one schema (clashes, core names, bad paths)."""
    problems: list[str] = []
    seen: dict[tuple[str, tuple[str, ...]], DataField] = {}
    for spec in fields:
        dotted = spec.dotted
        if not 1 <= len(spec.path) <= MAX_PATH_SEGMENTS:
            problems.append(f"{dotted}: at most {MAX_PATH_SEGMENTS} dotted parts")
        bad = [part for part in spec.path if not SEGMENT.match(part)]
        if bad:
            problems.append(f"{dotted}: {bad[0]!r} must be lower case: letters, digits, _")
        if spec.path and spec.path[0] in CORE_FIELDS:
            problems.append(f"{dotted}: data.{spec.path[0]} is part of the contract")
        if spec.enum and spec.kind != "string":
            problems.append(f"{dotted}: an enum is a list of strings")
        for other_key, other in seen.items():
            if other_key[0] not in (spec.event_type, ANY_TYPE) and spec.event_type not in (
                    other_key[0], ANY_TYPE):
                continue
            shorter, longer = sorted((spec.path, other.path), key=len)
            if longer[:len(shorter)] == shorter:
                problems.append(f"{dotted} ({spec.event_type}): clashes with {other.dotted} "
                                f"({other.event_type})")
        seen[(spec.event_type, spec.path)] = spec
    return problems

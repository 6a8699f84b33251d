"""Case events: the CloudEvents 1.0 envelope and the case payload of DESIGN.md.

Bad input is data, not an exception that escapes: :func:`decode_event` returns
either a valid :class:`CaseEvent` or a :class:`Rejection` with a machine-readable
reason and the field path, which the worker sends to the dead letters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from advisering.event_schema import DataField, DataSchema, compile_schemas
from advisering.jsondepth import json_too_deep
from advisering.privacy import PSEUDONYM_PATTERN, cpr_paths, json_may_hold_cpr

CORE_DEPARTMENTS = (
    "jobcenter", "ydelse", "boern-familie", "aeldre", "handicap-psykiatri",
    "sundhed", "skole", "borgerservice",
)
CORE_EVENT_TYPES = (
    "case.opened", "case.status-changed", "case.closed", "case.reassigned",
    "case.party-added", "case.party-removed", "document.added", "appointment.missed",
    "benefit.changed", "citizen.moved", "citizen.admitted", "citizen.discharged",
    "citizen.deceased",
)
SDI_STATUSES = ("opstaaet", "oplyst", "afgjort", "afsluttet")
BENEFIT_ACTIONS = ("granted", "reduced", "stopped", "sanctioned")
# The data fields DESIGN.md fixes beyond case and parties: benefit.changed says what happened.
CORE_DATA_FIELDS = (
    DataField(event_type="benefit.changed", path=("benefit", "action"), enum=BENEFIT_ACTIONS,
              required=True),
)
DEFAULT_MAX_DEPTH = 32  # ADVISERING_JSON_MAX_DEPTH
DEFAULT_MAX_PARTIES = 20  # ADVISERING_EVENT_MAX_PARTIES
MAX_PARTIES_BOUND = 1000  # the model's own bound, whatever the setting says

Status = Literal["opstaaet", "oplyst", "afgjort", "afsluttet"]
Sensitivity = Literal["ikke-fortrolige", "fortrolige", "foelsomme"]

KLE_PATTERN = re.compile(r"^[0-9]{2}(\.[0-9]{2}){0,2}$")
_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class RejectReason(StrEnum):
    """Why an event went to the dead letters (a bounded set: it is a metric label)."""

    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_DEPARTMENT = "unknown_department"
    MISSING_CASE = "missing_case"
    CPR_DETECTED = "cpr_detected"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    NOT_GRANTED = "not_granted"
    UNKNOWN_SOURCE = "unknown_source"
    CITIZEN_STATE_LIMIT = "citizen_state_limit"
    PROCESSING_ERROR = "processing_error"


class Vocabulary(BaseModel):
    """What an event may be here: departments, event types, data fields (core plus declared).

    It also carries the limits an event must keep (JSON depth, parties), so
    everything that decides whether an event is acceptable travels as one
    value. The per-type data schemas are compiled once, when it is made.
    """

    model_config = ConfigDict(frozen=True)

    departments: frozenset[str] = frozenset(CORE_DEPARTMENTS)
    event_types: frozenset[str] = frozenset(CORE_EVENT_TYPES)
    data_fields: tuple[DataField, ...] = CORE_DATA_FIELDS
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=2, le=200)
    max_parties: int = Field(default=DEFAULT_MAX_PARTIES, ge=1, le=MAX_PARTIES_BOUND)
    _schemas: Mapping[str, DataSchema] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any, /) -> None:
        """Compile the per-type data schemas once, when the vocabulary is made."""
        self._schemas = compile_schemas(self.data_fields, self.event_types)

    def schema_for(self, event_type: str) -> DataSchema | None:
        """The data schema of a known event type (None for an unknown type)."""
        return self._schemas.get(event_type)

    @classmethod
    def extended(
        cls, departments: Iterable[str] = (), event_types: Iterable[str] = (),
        data_fields: Iterable[DataField] = (), *, max_depth: int = DEFAULT_MAX_DEPTH,
        max_parties: int = DEFAULT_MAX_PARTIES,
    ) -> Vocabulary:
        """The core vocabulary plus a deployment's own departments, types and fields."""
        return cls(
            departments=frozenset(CORE_DEPARTMENTS) | frozenset(departments),
            event_types=frozenset(CORE_EVENT_TYPES) | frozenset(event_types),
            data_fields=CORE_DATA_FIELDS + tuple(data_fields),
            max_depth=max_depth, max_parties=max_parties,
        )


class CaseRef(BaseModel):
    """A case (sag) as the Sags- og Dokumentindeks describes it: metadata only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    # Dot-separated two-digit groups, like 32.24.06 (checked in pydantic's core).
    kle: str = Field(pattern=KLE_PATTERN.pattern)
    status: Status
    previous_status: Status | None = None
    department: str = Field(pattern=_NAME)
    unit: str = Field(pattern=_NAME)
    caseworker: str | None = Field(default=None, pattern=_NAME)
    sensitivity: Sensitivity = "fortrolige"


class Party(BaseModel):
    """A citizen taking part in a case, by pseudonym only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    citizen: str = Field(pattern=PSEUDONYM_PATTERN)
    role: str = Field(default="primaer", pattern=_NAME)


class EventData(BaseModel):
    """The payload: the case, the parties and the declared fields of its event type.

    The model checks the core (``case``, ``parties``); the other fields are
    kept as their JSON values in ``model_extra`` and checked against the
    event type's schema (:mod:`advisering.event_schema`) by
    :func:`validate_event` and :func:`decode_event`, the only ways in.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    case: CaseRef | None = None
    # The vocabulary's max_parties (a setting) is checked after the model; this
    # bound keeps the model itself from building thousands of parties.
    parties: tuple[Party, ...] = Field(min_length=1, max_length=MAX_PARTIES_BOUND)


class CaseEvent(BaseModel):
    """A CloudEvents 1.0 structured-mode event about a case or a citizen."""

    # Parsing JSON, pydantic caches only the keys: the values (ids, pseudonyms,
    # times) rarely repeat, and caching them costs about a tenth of the decode.
    model_config = ConfigDict(extra="forbid", frozen=True, cache_strings="keys")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(pattern=_NAME)
    type: str = Field(max_length=64, pattern=r"^[a-z]+\.[a-z-]+$")
    time: AwareDatetime  # with a UTC offset (RFC 3339)
    subject: str | None = Field(default=None, max_length=128)
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(default=None, max_length=256)
    data: EventData

    @property
    def key(self) -> str:
        """The Kafka key: the pseudonym of the first party (every event has at least one).

        Keyed by citizen, the events whose first party is one citizen share a
        partition and keep their order (DESIGN.md, ``advisering.case-events``).
        """
        return self.data.parties[0].citizen

    @property
    def department(self) -> str | None:
        """The department owning the case (None for registry events, which have no case)."""
        return self.data.case.department if self.data.case else None

    def data_value(self, dotted: str) -> Any:
        """The value at a dotted path inside ``data`` (None when absent)."""
        current: Any = self.data.model_dump(mode="json")
        for part in dotted.split("."):
            if not isinstance(current, dict) or part not in current:
                return None
            current = current[part]
        return current


def needs_case(event_type: str) -> bool:
    """Every event type except the registries' ``citizen.*`` must carry a case."""
    return not event_type.startswith("citizen.")


@dataclass(frozen=True)
class Rejection:
    """Why an input could not be processed, with the path of the first problem."""

    reason: RejectReason
    path: str
    message: str
    problems: tuple[tuple[str, str], ...] = ()  # (path, message) of every problem


def rejection_from_validation(error: ValidationError) -> Rejection:
    """Every problem pydantic found, with the reason of the first one."""
    problems = []
    for detail in error.errors():
        path = ".".join(str(part) for part in detail["loc"])
        problems.append((path, detail["msg"] if detail["type"] != "extra_forbidden"
                         else "unknown field"))
    return Rejection(_REASONS.get(error.errors()[0]["type"], RejectReason.INVALID_FIELD),
                     problems[0][0], problems[0][1], tuple(problems))


# pydantic's error type of the first problem -> the reason (anything else: invalid_field).
_REASONS = {
    "missing": RejectReason.MISSING_FIELD,
    "extra_forbidden": RejectReason.UNKNOWN_FIELD,
    "too_long": RejectReason.TOO_LARGE,  # a list past its bound (parties)
    "json_invalid": RejectReason.NOT_JSON,  # from model_validate_json
}


def validate_event(raw: Any, vocabulary: Vocabulary) -> CaseEvent | Rejection:
    """Check a decoded JSON value against the model, the vocabulary and the CPR ban."""
    if not isinstance(raw, dict):
        return Rejection(RejectReason.NOT_AN_OBJECT, "", "an event must be a JSON object")
    cpr_found = list(cpr_paths(raw))
    if cpr_found:
        return Rejection(
            RejectReason.CPR_DETECTED, cpr_found[0],
            "a CPR number may not appear in an event; parties must be pseudonymised",
            tuple((path, "CPR number") for path in cpr_found),
        )
    try:
        event = CaseEvent.model_validate(raw)
    except ValidationError as exc:
        return rejection_from_validation(exc)
    return _in_vocabulary(event, vocabulary)


def _in_vocabulary(event: CaseEvent, vocabulary: Vocabulary) -> CaseEvent | Rejection:
    """The checks past the model: type, case, department, data fields of the type, parties."""
    schema = vocabulary.schema_for(event.type)
    if schema is None:
        return Rejection(RejectReason.UNKNOWN_TYPE, "type",
                         f"unknown event type {event.type!r}")
    data = event.data
    if needs_case(event.type) and data.case is None:
        return Rejection(RejectReason.MISSING_CASE, "data.case",
                         f"a {event.type} event must carry data.case")
    if data.case is not None and data.case.department not in vocabulary.departments:
        return Rejection(RejectReason.UNKNOWN_DEPARTMENT, "data.case.department",
                         f"unknown department {data.case.department!r}")
    extra = data.model_extra
    if extra or schema.required:  # most events carry none: one dict lookup, no validation
        problems = schema.problems(extra or {})
        if problems:
            kind, path, message = problems[0]
            return Rejection(_REASONS.get(kind, RejectReason.INVALID_FIELD), path, message,
                             tuple((p, m) for _, p, m in problems))
    if len(data.parties) > vocabulary.max_parties:
        return Rejection(RejectReason.TOO_LARGE, "data.parties",
                         f"at most {vocabulary.max_parties} parties per event")
    return event


def decode_event(payload: bytes | None, vocabulary: Vocabulary) -> CaseEvent | Rejection:
    """Bytes from the topic to a valid event or a rejection; never raises.

    First, before any parser sees them, bytes nested deeper than the
    vocabulary's ``max_depth`` are refused (``too_deep``).

    Fast path: when the raw bytes cannot hold a CPR number in any disguise
    (:func:`advisering.privacy.json_may_hold_cpr`, a sound byte-level
    pre-check) and hold no NaN/Infinity (which pydantic's JSON parser would
    take and orjson refuses), pydantic parses the bytes itself and the walk
    over every key and value is skipped. Anything else, and any event the fast
    path refuses, takes the slow path, which gives the precise rejection.
    """
    if payload is None:
        return Rejection(RejectReason.NOT_JSON, "", "empty record (no value)")
    if json_too_deep(payload, vocabulary.max_depth):
        return too_deep(vocabulary.max_depth)
    if not json_may_hold_cpr(payload) and b"NaN" not in payload and b"Infinity" not in payload:
        try:
            event = CaseEvent.model_validate_json(payload)
        except ValidationError:
            pass
        else:
            return _in_vocabulary(event, vocabulary)
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Rejection(RejectReason.NOT_JSON, "", f"not JSON: {exc}")
    return validate_event(raw, vocabulary)


def parse_json(payload: bytes, max_depth: int) -> Any:
    """One JSON text parsed, or a Rejection: too deep (checked before parsing) or not JSON."""
    if json_too_deep(payload, max_depth):
        return too_deep(max_depth)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Rejection(RejectReason.NOT_JSON, "", f"not JSON: {exc}")


def too_deep(limit: int) -> Rejection:
    """The rejection of JSON nested deeper than ``limit`` (found before any parse)."""
    return Rejection(RejectReason.TOO_DEEP, "",
                     f"JSON may be nested at most {limit} levels deep")


def encode_event(event: CaseEvent) -> bytes:
    """The event as JSON for Kafka, absent fields left out.

    pydantic writes the JSON itself, in about half the time of building the
    dict (``model_dump``) and handing it to orjson; the bytes are the same
    for every event a JSON parser can give (a property test holds the two
    equal: floats, escapes, non-ASCII text, times).
    """
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)

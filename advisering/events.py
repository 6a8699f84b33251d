"""Case events: the CloudEvents 1.0 envelope and the case payload of DESIGN.md.

Bad input is data, not an exception that escapes: :func:`decode_event` returns
either a valid :class:`CaseEvent` or a :class:`Rejection` with a machine-readable
reason and the field path, which the worker sends to the dead letters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from advisering.privacy import cpr_paths, json_may_hold_cpr

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
SENSITIVITIES = ("ikke-fortrolige", "fortrolige", "foelsomme")
BENEFIT_ACTIONS = ("granted", "reduced", "stopped", "sanctioned")

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
    """The departments and event types known to this municipality (core plus declared)."""

    model_config = ConfigDict(frozen=True)

    departments: frozenset[str] = frozenset(CORE_DEPARTMENTS)
    event_types: frozenset[str] = frozenset(CORE_EVENT_TYPES)

    @classmethod
    def extended(
        cls, departments: Iterable[str] = (), event_types: Iterable[str] = ()
    ) -> Vocabulary:
        return cls(
            departments=frozenset(CORE_DEPARTMENTS) | frozenset(departments),
            event_types=frozenset(CORE_EVENT_TYPES) | frozenset(event_types),
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

    citizen: str = Field(pattern=r"^ps1-[a-z2-7]{52}$")
    role: str = Field(default="primaer", pattern=_NAME)


class EventData(BaseModel):
    """The payload: the case, the parties and event-specific metadata (for example benefit)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    case: CaseRef | None = None
    parties: tuple[Party, ...] = Field(min_length=1)


class CaseEvent(BaseModel):
    """A CloudEvents 1.0 structured-mode event about a case or a citizen."""

    # Parsing JSON, pydantic caches only the keys: the values (ids, pseudonyms,
    # times) rarely repeat, and caching them costs about a tenth of the decode.
    model_config = ConfigDict(extra="forbid", frozen=True, cache_strings="keys")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(pattern=_NAME)
    type: str = Field(pattern=r"^[a-z]+\.[a-z-]+$")
    time: AwareDatetime  # with a UTC offset (RFC 3339)
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: EventData

    @property
    def key(self) -> str:
        """The Kafka key: the case id, or for registry events the subject or id."""
        if self.data.case is not None:
            return self.data.case.id
        return self.subject or self.id

    @property
    def department(self) -> str | None:
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


def _rejection_from_validation(error: ValidationError) -> Rejection:
    problems = []
    for detail in error.errors():
        path = ".".join(str(part) for part in detail["loc"])
        problems.append((path, detail["msg"] if detail["type"] != "extra_forbidden"
                         else "unknown field"))
    first = error.errors()[0]
    kind = first["type"]
    reason = (
        RejectReason.MISSING_FIELD if kind == "missing"
        else RejectReason.UNKNOWN_FIELD if kind == "extra_forbidden"
        else RejectReason.INVALID_FIELD
    )
    return Rejection(reason, problems[0][0], problems[0][1], tuple(problems))


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
        return _rejection_from_validation(exc)
    return _in_vocabulary(event, vocabulary)


def _in_vocabulary(event: CaseEvent, vocabulary: Vocabulary) -> CaseEvent | Rejection:
    if event.type not in vocabulary.event_types:
        return Rejection(RejectReason.UNKNOWN_TYPE, "type",
                         f"unknown event type {event.type!r}")
    if needs_case(event.type) and event.data.case is None:
        return Rejection(RejectReason.MISSING_CASE, "data.case",
                         f"a {event.type} event must carry data.case")
    if event.data.case is not None and event.data.case.department not in vocabulary.departments:
        return Rejection(RejectReason.UNKNOWN_DEPARTMENT, "data.case.department",
                         f"unknown department {event.data.case.department!r}")
    return event


def decode_event(payload: bytes | None, vocabulary: Vocabulary) -> CaseEvent | Rejection:
    """Bytes from the topic to a valid event or a rejection; never raises.

    Fast path: when the raw bytes cannot hold a CPR number (no ten-digit run,
    no escape) and hold no NaN/Infinity (which pydantic's JSON parser would
    take and orjson refuses), pydantic parses the bytes itself and the walk
    over every key and value is skipped. Anything else, and any event the fast
    path refuses, takes the slow path, which gives the precise rejection.
    """
    if payload is None:
        return Rejection(RejectReason.NOT_JSON, "", "empty record (no value)")
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


def encode_event(event: CaseEvent) -> bytes:
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))

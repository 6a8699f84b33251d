"""Decode an event that was validated upstream, without validating it again.

Why: the correlate hop reads events that intake validated with the pydantic
models a moment before (the repartition topic is the worker's own). Building
the pydantic objects a second time was a third of the engine's time per
event. :func:`decode_validated` reads the JSON with orjson into plain
namespaces carrying what the engine reads of an event
(:class:`~advisering.engine.event.EngineEvent`): ``id``, ``source``, ``type``,
``time``, ``subject``, ``department``, ``data.case`` (every field, defaults
filled in), ``data.parties`` and ``data.model_extra``. The namespaces are
typed subclasses of ``SimpleNamespace``: as cheap to build, and they meet the
Protocol without a cast.

It checks nothing intake checked already; what it cannot read (missing
fields, a time ``fromisoformat`` refuses or without a UTC offset) goes
through the pydantic model instead. Tests hold both paths to the same
notifications and state.

The extension fields of ``data`` are those intake let through, checked
against the event type's schema; they stay the JSON values they came as, in
``model_extra``, exactly as the pydantic model keeps them.

The repartition topic is the worker's own, but a hostile or broken writer can
put anything there: :func:`decode_trusted` answers such a record with a
:class:`Rejection` (too deep, not JSON, not an event), never an exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson
from pydantic import ValidationError

from advisering.engine.event import EngineEvent
from advisering.events import (
    DEFAULT_MAX_DEPTH,
    CaseEvent,
    CaseRef,
    Party,
    Rejection,
    RejectReason,
    rejection_from_validation,
    too_deep,
)
from advisering.jsondepth import json_too_deep

_DATA_FIELDS = frozenset(("case", "parties"))
# The models' own defaults, so the two decodes cannot drift apart.
_CASE_DEFAULTS = {name: info.default for name, info in CaseRef.model_fields.items()
                  if not info.is_required()}
_ROLE_DEFAULT = Party.model_fields["role"].default


class _Case(SimpleNamespace):
    """Every field of a :class:`CaseRef`, defaults filled in."""

    id: str
    kle: str
    status: str
    previous_status: str | None
    department: str
    unit: str
    caseworker: str | None
    sensitivity: str


class _Party(SimpleNamespace):
    citizen: str
    role: str


class _Data(SimpleNamespace):
    case: _Case | None
    parties: Sequence[_Party]
    model_extra: dict[str, Any]  # the event type's fields, JSON values as they came


class _Event(SimpleNamespace):
    id: str
    source: str
    type: str
    time: dt.datetime
    subject: str | None
    department: str | None
    data: _Data


def _read(raw: dict[str, Any]) -> _Event:
    time = dt.datetime.fromisoformat(raw["time"])
    if time.tzinfo is None:
        raise ValueError("time without a UTC offset")
    data = raw["data"]
    case_raw = data.get("case")
    case = None
    if case_raw is not None:
        case = _Case(**{**_CASE_DEFAULTS, **case_raw})
    parties = tuple(_Party(citizen=party["citizen"], role=party.get("role", _ROLE_DEFAULT))
                    for party in data["parties"])
    extra = {k: v for k, v in data.items() if k not in _DATA_FIELDS}
    return _Event(
        id=raw["id"], source=raw["source"], type=raw["type"], time=time,
        subject=raw.get("subject"), department=case.department if case else None,
        data=_Data(case=case, parties=parties, model_extra=extra),
    )


def decode_validated(payload: bytes) -> EngineEvent:
    """The event in ``payload`` (validated upstream), as the engine reads it."""
    try:
        raw = orjson.loads(payload)
        return _read(raw)
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError):
        return CaseEvent.model_validate_json(payload)


def decode_trusted(
    payload: bytes, max_depth: int = DEFAULT_MAX_DEPTH,
) -> EngineEvent | Rejection:
    """:func:`decode_validated`, or why ``payload`` is no event; never raises.

    The depth is checked first (two byte counts for an ordinary event), so a
    deep record is never parsed.
    """
    if json_too_deep(payload, max_depth):
        return too_deep(max_depth)
    try:
        return decode_validated(payload)
    except ValidationError as exc:
        return rejection_from_validation(exc)
    except ValueError as exc:  # orjson's JSONDecodeError is one; pydantic's JSON errors too
        return Rejection(RejectReason.NOT_JSON, "", f"not JSON: {type(exc).__name__}")

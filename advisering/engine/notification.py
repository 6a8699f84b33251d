"""The engine's output as types: a notification and the audit record of its disclosure.

Frozen dataclasses, not pydantic models: they measured faster to build and
encode on the engine's path, and the engine builds them from data it has
already checked. orjson encodes a dataclass field by field in declaration
order, so the field order here IS the JSON of DESIGN.md ("Notification");
:meth:`Notification.encode` is what goes on the wire.

Readers of the notifications topic (the inbox, delivery) get them back with
:meth:`Notification.from_json`, which checks the shape and raises
``ValueError`` on anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson


def _text(raw: Mapping[str, object], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _optional_text(raw: Mapping[str, object], name: str) -> str | None:
    value = raw.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is neither a string nor null")
    return value


def _object(raw: Mapping[str, object], name: str) -> Mapping[str, object]:
    value = raw.get(name)
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} is not an object")
    return value


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who is told: the caseworker of a case, or its unit when it has none."""

    caseworker: str | None
    unit: str
    department: str

    @property
    def key(self) -> str:
        """Whom a notification is for: the caseworker, or ``unit:<unit>`` without one.

        The Kafka key of a notification and the owner of its inbox entry,
        webhook lane and e-mail digest; one rule for all of them.
        """
        return self.caseworker if self.caseworker else f"unit:{self.unit}"

    def to_json(self) -> dict[str, str | None]:
        """The recipient's JSON, fields in declaration order."""
        return {"caseworker": self.caseworker, "unit": self.unit, "department": self.department}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Recipient:
        """The recipient in a notification's JSON; ValueError when a field has the wrong type."""
        return cls(_optional_text(raw, "caseworker"), _text(raw, "unit"),
                   _text(raw, "department"))


@dataclass(frozen=True, slots=True)
class RelatedCase:
    """The recipient's own case, through which they know the citizen."""

    id: str
    source: str
    kle: str

    def to_json(self) -> dict[str, str]:
        """The related case's JSON, fields in declaration order."""
        return {"id": self.id, "source": self.source, "kle": self.kle}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> RelatedCase:
        """The related case in a notification's JSON; ValueError when a field is not a string."""
        return cls(_text(raw, "id"), _text(raw, "source"), _text(raw, "kle"))


@dataclass(frozen=True, slots=True)
class Trigger:
    """The event that fired the rule (``time`` as the event gave it, ISO 8601)."""

    event_id: str
    source: str
    type: str
    department: str | None
    time: str

    def to_json(self) -> dict[str, str | None]:
        """The trigger's JSON, fields in declaration order."""
        return {"event_id": self.event_id, "source": self.source, "type": self.type,
                "department": self.department, "time": self.time}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Trigger:
        """The trigger in a notification's JSON; ValueError when a field has the wrong type."""
        return cls(_text(raw, "event_id"), _text(raw, "source"), _text(raw, "type"),
                   _optional_text(raw, "department"), _text(raw, "time"))


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification, the value of a record on ``advisering.notifications``."""

    id: str
    rule: str
    title: str
    severity: str
    recipient: Recipient
    related_case: RelatedCase
    trigger: Trigger
    citizen: str
    message: str
    legal_basis: str
    created: str

    def encode(self) -> bytes:
        """The JSON of DESIGN.md, fields in declaration order.

        Built as a dict: orjson writes one in a seventh of the time it takes
        over the nested dataclasses, and this runs once per notification.
        """
        return orjson.dumps(self.to_json())

    def to_json(self) -> dict[str, Any]:
        """The JSON as a mapping (for answers that add to it, like the inbox's links)."""
        return {
            "id": self.id, "rule": self.rule, "title": self.title, "severity": self.severity,
            "recipient": self.recipient.to_json(), "related_case": self.related_case.to_json(),
            "trigger": self.trigger.to_json(), "citizen": self.citizen, "message": self.message,
            "legal_basis": self.legal_basis, "created": self.created,
        }

    @classmethod
    def from_json(cls, raw: object) -> Notification:
        """The notification in ``raw`` (decoded JSON); ``ValueError`` when it has another shape."""
        if not isinstance(raw, Mapping):
            raise ValueError("a notification is a JSON object")
        return cls(
            id=_text(raw, "id"), rule=_text(raw, "rule"), title=_text(raw, "title"),
            severity=_text(raw, "severity"),
            recipient=Recipient.from_json(_object(raw, "recipient")),
            related_case=RelatedCase.from_json(_object(raw, "related_case")),
            trigger=Trigger.from_json(_object(raw, "trigger")),
            citizen=_text(raw, "citizen"), message=_text(raw, "message"),
            legal_basis=_text(raw, "legal_basis"), created=_text(raw, "created"),
        )

    @classmethod
    def decode(cls, payload: bytes) -> Notification:
        """The notification in a record's value; ``ValueError`` when it is none."""
        return cls.from_json(orjson.loads(payload))  # JSONDecodeError is a ValueError


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """The accountability record of one disclosure (principle 6 of the design)."""

    notification_id: str
    citizen: str
    recipient: Recipient
    rule: str
    legal_basis: str
    disclosed: str
    related_case: RelatedCase
    trigger: Trigger
    created: str
    title: str | None = None
    """The rule's title, added after the fields DESIGN fixes (records of older workers lack it)."""

    @classmethod
    def of(cls, notification: Notification) -> AuditRecord:
        """The record of what ``notification`` disclosed, to whom, under which legal basis."""
        return cls(
            notification_id=notification.id, citizen=notification.citizen,
            recipient=notification.recipient, rule=notification.rule,
            legal_basis=notification.legal_basis, disclosed=notification.message,
            related_case=notification.related_case, trigger=notification.trigger,
            created=notification.created, title=notification.title,
        )

    @classmethod
    def from_json(cls, raw: object) -> AuditRecord:
        """The audit record in ``raw`` (decoded JSON); ``ValueError`` when it has another shape."""
        if not isinstance(raw, Mapping):
            raise ValueError("an audit record is a JSON object")
        return cls(
            notification_id=_text(raw, "notification_id"), citizen=_text(raw, "citizen"),
            recipient=Recipient.from_json(_object(raw, "recipient")), rule=_text(raw, "rule"),
            legal_basis=_text(raw, "legal_basis"), disclosed=_text(raw, "disclosed"),
            related_case=RelatedCase.from_json(_object(raw, "related_case")),
            trigger=Trigger.from_json(_object(raw, "trigger")), created=_text(raw, "created"),
            title=_optional_text(raw, "title"),
        )

    def encode(self) -> bytes:
        """The JSON of DESIGN.md, fields in declaration order (built as a dict, as above)."""
        return orjson.dumps({
            "notification_id": self.notification_id, "citizen": self.citizen,
            "recipient": self.recipient.to_json(), "rule": self.rule,
            "legal_basis": self.legal_basis, "disclosed": self.disclosed,
            "related_case": self.related_case.to_json(), "trigger": self.trigger.to_json(),
            "created": self.created, "title": self.title,
        })

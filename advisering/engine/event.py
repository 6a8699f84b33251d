"""What the engine reads of an event, as a Protocol.

Two kinds of object meet it: the pydantic :class:`~advisering.events.CaseEvent`
(validated at intake, in the tests and the rule tools) and the lighter
objects :mod:`advisering.engine.trusted` builds for events validated upstream.
Typing the engine against this Protocol, rather than against ``CaseEvent``,
lets both through without a cast and says exactly which fields the engine's
answers depend on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol


class CaseView(Protocol):
    """The event's case: every field of :class:`~advisering.events.CaseRef`."""

    @property
    def id(self) -> str:
        """The case id (the source system's own)."""

    @property
    def kle(self) -> str:
        """The KLE number, dot-separated two-digit groups like 32.24.06."""

    @property
    def status(self) -> str:
        """The status the case has now."""

    @property
    def previous_status(self) -> str | None:
        """The status before this event, or None when the event does not give one."""

    @property
    def department(self) -> str:
        """The department owning the case."""

    @property
    def unit(self) -> str:
        """The unit inside the department handling the case."""

    @property
    def caseworker(self) -> str | None:
        """The caseworker assigned, or None when nobody is."""

    @property
    def sensitivity(self) -> str:
        """How sensitive the case is; ``foelsomme`` cases reach only rules that allow them."""


class PartyView(Protocol):
    """A citizen taking part, by pseudonym."""

    @property
    def citizen(self) -> str:
        """The citizen's pseudonym (never a CPR number)."""

    @property
    def role(self) -> str:
        """The citizen's role in the case."""


class DataView(Protocol):
    """The payload: the case, the parties and the event type's own fields."""

    @property
    def case(self) -> CaseView | None:
        """The case, or None for the registries' ``citizen.*`` events."""

    @property
    def parties(self) -> Sequence[PartyView]:
        """The citizens taking part, at least one."""

    @property
    def model_extra(self) -> dict[str, Any] | None:
        """The event type's declared fields, as the JSON values they came as."""


class EngineEvent(Protocol):
    """What :func:`advisering.engine.evaluate.process` and its helpers read of an event."""

    @property
    def id(self) -> str:
        """The event id, unique per source."""

    @property
    def source(self) -> str:
        """The system that sent the event."""

    @property
    def type(self) -> str:
        """The event type, like ``case.status-changed``."""

    @property
    def time(self) -> dt.datetime:
        """When it happened, with a UTC offset."""

    @property
    def subject(self) -> str | None:
        """The CloudEvents subject, or None."""

    @property
    def department(self) -> str | None:
        """The department owning the case (None for registry events)."""

    @property
    def data(self) -> DataView:
        """The payload."""

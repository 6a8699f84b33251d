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
    def id(self) -> str: ...
    @property
    def kle(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def previous_status(self) -> str | None: ...
    @property
    def department(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def caseworker(self) -> str | None: ...
    @property
    def sensitivity(self) -> str: ...


class PartyView(Protocol):
    """A citizen taking part, by pseudonym."""

    @property
    def citizen(self) -> str: ...
    @property
    def role(self) -> str: ...


class DataView(Protocol):
    """The payload: the case, the parties and the event type's own fields."""

    @property
    def case(self) -> CaseView | None: ...
    @property
    def parties(self) -> Sequence[PartyView]: ...
    @property
    def model_extra(self) -> dict[str, Any] | None:
        """The event type's declared fields, as the JSON values they came as."""


class EngineEvent(Protocol):
    """What :func:`advisering.engine.evaluate.process` and its helpers read of an event."""

    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def time(self) -> dt.datetime: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def department(self) -> str | None: ...
    @property
    def data(self) -> DataView: ...

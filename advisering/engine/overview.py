"""A citizen's cross-system overview: the open cases, and what was already told.

This is the only state the bus keeps about a citizen (data minimisation): per
pseudonym, the open cases' metadata, a short-lived tombstone per closed case
(so a late event cannot resurrect it), the (source, id) of events already
processed and the ids of notifications already sent (so a re-delivered event
notifies nobody twice, even when the overview changed since) and the
throttle windows.
Times are event times (epoch seconds), so a replay gives the same answers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from advisering.events import CaseEvent

CLOSED_TOMBSTONE_SECONDS = 30 * 86400
SENT_MEMORY_SECONDS = 14 * 86400


@dataclass(frozen=True, slots=True)
class OpenCase:
    """What the bus knows of one open case: metadata, never content."""

    id: str
    source: str
    department: str
    unit: str
    caseworker: str | None
    kle: str
    status: str
    sensitivity: str
    last_seen: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": self.source, "department": self.department,
            "unit": self.unit, "caseworker": self.caseworker, "kle": self.kle,
            "status": self.status, "sensitivity": self.sensitivity, "last_seen": self.last_seen,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> OpenCase:
        return cls(**raw)


@dataclass(slots=True)
class CitizenState:
    """Everything the bus keeps about one pseudonym."""

    cases: dict[str, OpenCase] = field(default_factory=dict)
    closed: dict[str, float] = field(default_factory=dict)
    sent: dict[str, float] = field(default_factory=dict)
    throttle: dict[str, float] = field(default_factory=dict)
    newest: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)

    def copy(self) -> CitizenState:
        return CitizenState(dict(self.cases), dict(self.closed), dict(self.sent),
                            dict(self.throttle), self.newest, dict(self.seen))

    def is_empty(self) -> bool:
        return not (self.cases or self.closed or self.sent or self.throttle or self.seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": [case.to_json() for case in self.cases.values()],
            "closed": self.closed,
            "sent": self.sent,
            "throttle": self.throttle,
            "newest": self.newest,
            "seen": self.seen,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> CitizenState:
        if not raw:
            return cls()
        return cls(
            cases={c["id"]: OpenCase.from_json(c) for c in raw.get("cases", [])},
            closed=dict(raw.get("closed", {})),
            sent=dict(raw.get("sent", {})),
            throttle=dict(raw.get("throttle", {})),
            newest=float(raw.get("newest", 0.0)),
            seen=dict(raw.get("seen", {})),
        )


def event_seconds(event: CaseEvent) -> float:
    return event.time.timestamp()


def apply_event(state: CitizenState, event: CaseEvent) -> bool:
    """Update ``state`` (a copy owned by the caller) with the event's news of its case.

    Returns False when the event is older than what the overview already knows
    of that case, in which case the case is left as it is.
    """
    at = event_seconds(event)
    state.newest = max(state.newest, at)
    case = event.data.case
    if case is None:
        return True
    known = state.cases.get(case.id)
    closed_at = state.closed.get(case.id)
    if (known is not None and at < known.last_seen) or (closed_at is not None and at < closed_at):
        return False
    closing = (
        event.type == "case.closed"
        or case.status == "afsluttet"
        or event.type == "case.party-removed"
    )
    if closing:
        state.cases.pop(case.id, None)
        state.closed[case.id] = at
        return True
    state.closed.pop(case.id, None)
    state.cases[case.id] = OpenCase(
        id=case.id, source=event.source, department=case.department, unit=case.unit,
        caseworker=case.caseworker, kle=case.kle, status=case.status,
        sensitivity=case.sensitivity, last_seen=at,
    )
    return True


def prune(state: CitizenState) -> None:
    """Forget tombstones, sent ids and throttle windows that can no longer matter."""
    horizon_closed = state.newest - CLOSED_TOMBSTONE_SECONDS
    horizon_sent = state.newest - SENT_MEMORY_SECONDS
    if any(t < horizon_closed for t in state.closed.values()):
        state.closed = {k: t for k, t in state.closed.items() if t >= horizon_closed}
    if any(t < horizon_sent for t in state.sent.values()):
        state.sent = {k: t for k, t in state.sent.items() if t >= horizon_sent}
    if any(t < horizon_sent for t in state.seen.values()):
        state.seen = {k: t for k, t in state.seen.items() if t >= horizon_sent}
    if any(until < state.newest for until in state.throttle.values()):
        state.throttle = {k: u for k, u in state.throttle.items() if u >= state.newest}


def with_case(state: CitizenState, case: OpenCase) -> CitizenState:
    """A copy of ``state`` with one more open case (used for starting overviews)."""
    new = state.copy()
    new.cases[case.id] = case
    new.newest = max(new.newest, case.last_seen)
    return new


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()



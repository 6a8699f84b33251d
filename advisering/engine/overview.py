"""A citizen's cross-system overview: the open cases, and what was already told.

This is the only state the bus keeps about a citizen (data minimisation): per
pseudonym, the open cases' metadata, a short-lived tombstone per closed case
(so a late event cannot resurrect it), the (source, id) of events already
processed and the ids of notifications already sent (so a re-delivered event
notifies nobody twice, even when the overview changed since) and the
throttle windows.
Times are event times (epoch seconds), so a replay gives the same answers.
Remembered event ids, tombstones and throttle windows are keyed by a short
digest (:func:`memory_key`), not the ids themselves: an event id or case id
may be 128 characters, each up to six bytes in JSON, and these maps hold
thousands of entries (the record must stay small, see ``limits.py``); the
changelog also holds fewer of the sources' ids that way.
Stored (the changelog), they are whole epoch milliseconds: from 2027 on,
ten-digit epoch seconds (18019…, a valid date 18.01.98) read as CPR numbers
to the bus's own CPR scan and to any data-loss scanner run on the topics.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

from advisering.engine.event import EngineEvent

CLOSED_TOMBSTONE_SECONDS = 30 * 86400
_CLOSING_TYPES = frozenset(("case.closed", "case.party-removed"))
STATE_FORMAT = 2  # written as "v" in every stored state, for a reader of a later format
# Hex digits to letters: a digest key holds no digit, so it never reads as a CPR number.
_NO_DIGITS = bytes.maketrans(b"0123456789", b"ghijklmnop")


def memory_key(text: str) -> str:
    """The 24-letter key (96 bits of BLAKE2b) under which the state remembers ``text``."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()
    return binascii.hexlify(digest).translate(_NO_DIGITS).decode("ascii")


def seen_key(source: str, event_id: str) -> str:
    """The dedup memory's key of the event (source, id)."""
    return memory_key(f"{source}\x1f{event_id}")


def tombstone_key(case_id: str) -> str:
    """The key of a closed case's tombstone."""
    return memory_key(case_id)


def throttle_key(rule_id: str, recipient: str) -> str:
    """The key of a rule's throttle window for one recipient."""
    return memory_key(f"{rule_id}\x1f{recipient}")


def stored_time(seconds: float) -> int:
    """Epoch seconds as stored: whole milliseconds (13 digits, never CPR-shaped)."""
    return round(seconds * 1000)


def loaded_time(value: float) -> float:
    """A stored time (whole milliseconds) back to epoch seconds."""
    return value / 1000


def _stored(times: dict[str, float]) -> dict[str, int]:
    return {key: round(at * 1000) for key, at in times.items()}


def _loaded(times: Mapping[str, float]) -> dict[str, float]:
    return {key: loaded_time(at) for key, at in times.items()}

SENT_MEMORY_SECONDS = 14 * 86400


class StoredCase(TypedDict):
    """An open case as the changelog holds it (``last_seen`` in whole milliseconds)."""

    id: str
    source: str
    department: str
    unit: str
    caseworker: str | None
    kle: str
    status: str
    sensitivity: str
    last_seen: int


class StoredState(TypedDict):
    """A citizen's state as the changelog holds it (times in milliseconds, ``v`` the format)."""

    cases: list[StoredCase]
    closed: dict[str, int]
    sent: dict[str, int]
    throttle: dict[str, int]
    newest: int
    seen: dict[str, int]
    v: int


@dataclass(slots=True)
class OpenCase:
    """What the bus knows of one open case: metadata, never content.

    Treated as immutable (a new one replaces it); not ``frozen`` because a
    frozen dataclass sets each field through ``object.__setattr__``, which
    costs a tenth of the engine's time per event.
    """

    id: str
    source: str
    department: str
    unit: str
    caseworker: str | None
    kle: str
    status: str
    sensitivity: str
    last_seen: float

    def to_json(self) -> StoredCase:
        """The case as stored in the citizen's state (``last_seen`` in the stored time format)."""
        return {
            "id": self.id, "source": self.source, "department": self.department,
            "unit": self.unit, "caseworker": self.caseworker, "kle": self.kle,
            "status": self.status, "sensitivity": self.sensitivity,
            "last_seen": stored_time(self.last_seen),
        }

    @classmethod
    def from_json(cls, raw: StoredCase) -> OpenCase:
        """The case stored by :meth:`to_json`."""
        return cls(raw["id"], raw["source"], raw["department"], raw["unit"], raw["caseworker"],
                   raw["kle"], raw["status"], raw["sensitivity"], loaded_time(raw["last_seen"]))


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
        """A copy whose dicts can change without touching this one (the values are immutable)."""
        new = object.__new__(CitizenState)  # once per event: skips the generated __init__
        new.cases = self.cases.copy()
        new.closed = self.closed.copy()
        new.sent = self.sent.copy()
        new.throttle = self.throttle.copy()
        new.newest = self.newest
        new.seen = self.seen.copy()
        return new

    def is_empty(self) -> bool:
        """True when there is nothing to keep, so the citizen's entry can be deleted."""
        return not (self.cases or self.closed or self.sent or self.throttle or self.seen)

    def to_json(self) -> StoredState:
        """The JSON stored in the citizens table; ``v`` is the format's version."""
        return {
            "cases": [case.to_json() for case in self.cases.values()],
            "closed": _stored(self.closed),
            "sent": _stored(self.sent),
            "throttle": _stored(self.throttle),
            "newest": stored_time(self.newest),
            "seen": _stored(self.seen),
            "v": STATE_FORMAT,
        }

    @classmethod
    def from_json(cls, raw: StoredState | None) -> CitizenState:
        """The state stored by :meth:`to_json`; an empty state for None or an empty mapping.

        A missing key reads as empty (``raw`` is decoded changelog JSON, not checked here).
        """
        if not raw:
            return cls()
        return cls(
            cases={c["id"]: OpenCase.from_json(c) for c in raw.get("cases", [])},
            closed=_loaded(raw.get("closed", {})),
            sent=_loaded(raw.get("sent", {})),
            throttle=_loaded(raw.get("throttle", {})),
            newest=loaded_time(raw.get("newest", 0)),
            seen=_loaded(raw.get("seen", {})),
        )


def event_seconds(event: EngineEvent) -> float:
    """The event's time in POSIX seconds, the unit the state keeps times in."""
    return event.time.timestamp()


def apply_event(state: CitizenState, event: EngineEvent, at: float | None = None) -> bool:
    """Update ``state`` (a copy owned by the caller) with the event's news of its case.

    Returns False when the event is older than what the overview already knows
    of that case, in which case the case is left as it is. ``at`` is the
    event's time in epoch seconds when the caller has it already.
    """
    if at is None:
        at = event_seconds(event)
    state.newest = max(state.newest, at)
    case = event.data.case
    if case is None:
        return True
    case_id = case.id
    cases, closed = state.cases, state.closed
    known = cases.get(case_id)
    if known is not None and at < known.last_seen:
        return False
    # The digest only when there are tombstones or the event closes the case.
    tombstone = tombstone_key(case_id) if closed else ""
    closed_at = closed.get(tombstone) if tombstone else None
    if closed_at is not None and at < closed_at:
        return False
    event_type = event.type
    if event_type in _CLOSING_TYPES or case.status == "afsluttet":
        cases.pop(case_id, None)
        closed[tombstone or tombstone_key(case_id)] = at
        return True
    if closed_at is not None:
        del closed[tombstone]
    cases[case_id] = OpenCase(case_id, event.source, case.department, case.unit,
                              case.caseworker, case.kle, case.status, case.sensitivity, at)
    return True


def prune(state: CitizenState) -> None:
    """Forget tombstones, sent ids and throttle windows that can no longer matter."""
    # min() over the values runs in C: the common case (nothing to forget) is cheap.
    horizon_closed = state.newest - CLOSED_TOMBSTONE_SECONDS
    horizon_sent = state.newest - SENT_MEMORY_SECONDS
    if state.closed and min(state.closed.values()) < horizon_closed:
        state.closed = {k: t for k, t in state.closed.items() if t >= horizon_closed}
    if state.sent and min(state.sent.values()) < horizon_sent:
        state.sent = {k: t for k, t in state.sent.items() if t >= horizon_sent}
    if state.seen and min(state.seen.values()) < horizon_sent:
        state.seen = {k: t for k, t in state.seen.items() if t >= horizon_sent}
    if state.throttle and min(state.throttle.values()) < state.newest:
        state.throttle = {k: u for k, u in state.throttle.items() if u >= state.newest}


def with_case(state: CitizenState, case: OpenCase) -> CitizenState:
    """A copy of ``state`` with one more open case (used for starting overviews)."""
    new = state.copy()
    new.cases[case.id] = case
    new.newest = max(new.newest, case.last_seen)
    return new



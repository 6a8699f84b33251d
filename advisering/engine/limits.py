"""How much the bus may remember about one citizen, so that no citizen can stop it.

A citizen's state is one changelog record. Unbounded, a few thousand events
for one pseudonym made it larger than Kafka accepts (``max.message.bytes``);
the refused send stopped the worker, and the replay repeated it, for every
citizen. With these limits the record stays under 256 KiB even with every id
at its longest (``tests/unit/test_state_limits.py`` builds that state).

Open cases, remembered event ids (the dedup memory) and tombstones are hard
limits: an event that would pass one is refused (a dead letter with reason
``citizen_state_limit``) and the state stays as it was. Sent notification ids
and throttle windows are trimmed instead (see :func:`trim`): neither is the
guard that keeps a notification from going out twice (the remembered event
ids are), so forgetting the oldest costs at most an extra notification,
while refusing the event would lose its news and its notifications.

The defaults are settings (``ADVISERING_CITIZEN_*``); this module has the same
numbers so the engine and its tests need no settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from advisering.engine.overview import CitizenState, prune

MAX_OPEN_CASES = 100
MAX_SEEN_EVENTS = 2000
MAX_TOMBSTONES = 200
MAX_SENT_NOTIFICATIONS = 500
MAX_THROTTLE_WINDOWS = 200


@dataclass(frozen=True, slots=True)
class StateLimits:
    """The per-citizen limits the engine enforces (built from Settings by the worker)."""

    max_open_cases: int = MAX_OPEN_CASES
    max_seen_events: int = MAX_SEEN_EVENTS
    max_tombstones: int = MAX_TOMBSTONES
    max_sent_notifications: int = MAX_SENT_NOTIFICATIONS
    max_throttle_windows: int = MAX_THROTTLE_WINDOWS

    def __post_init__(self) -> None:
        for name in ("max_open_cases", "max_seen_events", "max_tombstones",
                     "max_sent_notifications", "max_throttle_windows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


DEFAULT_LIMITS = StateLimits()


def over_limit(before: CitizenState | None, new: CitizenState,
               limits: StateLimits) -> tuple[str, int] | None:
    """The hard limit (name, value) that ``new`` passes, or None.

    ``new`` is ``before`` with one event applied. A map counts as passing its
    limit only when the event made it grow beyond it: a state stored over a
    lowered limit can still shrink (a case closes) but not grow. Expired
    tombstones and event ids are pruned first (only when a map is over its
    limit, so the common case is three len() calls).
    """
    if (len(new.cases) <= limits.max_open_cases and len(new.seen) <= limits.max_seen_events
            and len(new.closed) <= limits.max_tombstones):
        return None
    prune(new)
    if before is None:
        before = _EMPTY
    if len(new.cases) > limits.max_open_cases and len(new.cases) > len(before.cases):
        return "max_open_cases", limits.max_open_cases
    if len(new.closed) > limits.max_tombstones and len(new.closed) > len(before.closed):
        return "max_tombstones", limits.max_tombstones
    if len(new.seen) > limits.max_seen_events and len(new.seen) > len(before.seen):
        return "max_seen_events", limits.max_seen_events
    return None


_EMPTY = CitizenState()


def trim(state: CitizenState, limits: StateLimits) -> int:
    """Forget the oldest sent ids and the throttle windows nearest their end; returns how many.

    Sent ids go in the order they were added (a dict keeps it); throttle
    windows by their end, so the one forgotten is the one about to lapse.
    """
    forgotten = 0
    excess = len(state.sent) - limits.max_sent_notifications
    if excess > 0:
        for key in list(islice(state.sent, excess)):
            del state.sent[key]
        forgotten += excess
    excess = len(state.throttle) - limits.max_throttle_windows
    if excess > 0:
        for key in sorted(state.throttle, key=state.throttle.__getitem__)[:excess]:
            del state.throttle[key]
        forgotten += excess
    return forgotten

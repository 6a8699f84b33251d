"""What the worker's agents do with one record, without Faust or Kafka.

Each step takes bytes and returns what to send where, so the agents stay a
few lines long and the behaviour is tested without a broker (bad input as
data: an ok stream and an error stream).

:func:`intake` and :func:`correlate` never raise, whatever the bytes: an
exception would break the agent's whole batch. What cannot be decoded is a
dead letter with its reason; what the engine fails on (a bug) is a dead
letter ``processing_error``, logged by type only.

Pure: no clock (the agent passes ``now``) and no metrics or log lines of
their own. What a step did is counted in its :class:`Outbox` (``counts``),
and the agent records it (:mod:`advisering.worker.tally`). Only a step's
own failure (a bug) is logged here, by type, as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from advisering.engine.evaluate import process
from advisering.engine.limits import DEFAULT_LIMITS, StateLimits
from advisering.engine.matcher import Matcher
from advisering.engine.notification import AuditRecord
from advisering.engine.overview import CitizenState
from advisering.engine.trusted import decode_trusted
from advisering.events import DEFAULT_MAX_DEPTH, Rejection, RejectReason, Vocabulary, decode_event
from advisering.grants import GrantCheck
from advisering.kafka.deadletters import DeadLetter, dead_letter
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StateLimitRefusal:
    """An event refused because a citizen's state would pass ``limit`` (for metric and log)."""

    citizen: str  # a prefix of the pseudonym, enough to find the citizen's other refusals
    limit: str
    value: int
    topic: str
    partition: int | None
    offset: int | None


@dataclass(slots=True)
class Counts:
    """What a step did, for the worker's metrics: the steps themselves touch no global."""

    accepted: int = 0  # events intake routed
    dead_lettered: int = 0  # events intake (or its failure) dead-lettered
    dead_letters: list[str] = field(default_factory=list)  # the reason of each dead letter
    state_limits: list[StateLimitRefusal] = field(default_factory=list)
    processed: bool = False  # the engine ran (its time is observed)
    trimmed: int = 0  # sent ids and throttle windows forgotten to keep the state's limits
    emitted: list[str] = field(default_factory=list)  # the rule of each notification
    matched: list[str] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    duplicates: int = 0
    stale: int = 0


@dataclass
class Outbox:
    """Records to send: per topic role, a list of (key, value); and what the step counted."""

    citizen_events: list[tuple[bytes, bytes]] = field(default_factory=list)
    notifications: list[tuple[bytes, bytes]] = field(default_factory=list)
    audit: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes, bytes]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)


def state_limits(settings: Settings) -> StateLimits:
    """The engine's per-citizen limits from the ``ADVISERING_CITIZEN_*`` settings."""
    return StateLimits(
        max_open_cases=settings.citizen_max_open_cases,
        max_seen_events=settings.citizen_max_seen_events,
        max_tombstones=settings.citizen_max_tombstones,
        max_sent_notifications=settings.citizen_max_sent_notifications,
        max_throttle_windows=settings.citizen_max_throttle_windows,
    )


def intake(
    payload: bytes | None, vocabulary: Vocabulary, *, grants: GrantCheck, topic: str,
    partition: int | None, offset: int | None, now: str,
) -> Outbox:
    """Validate one case event; fan it out per party keyed by pseudonym, or dead-letter it.

    A valid event from a source the sources file does not know, or outside its
    source's grants, is a dead letter too (``unknown_source``, ``not_granted``).
    """
    try:
        outbox = Outbox()
        result = decode_event(payload, vocabulary)
        if not isinstance(result, Rejection):
            result = grants.refusal(result) or result
        if isinstance(result, Rejection):
            outbox.dead_letters.append(dead_letter(
                result, payload, topic=topic, partition=partition, offset=offset,
                received=now,
            ))
            outbox.counts.dead_lettered += 1
            outbox.counts.dead_letters.append(result.reason.value)
            return outbox
        outbox.counts.accepted += 1
        value = payload if payload is not None else b""
        for citizen in dict.fromkeys(party.citizen for party in result.data.parties):
            outbox.citizen_events.append((citizen.encode(), value))
        return outbox
    except Exception as exc:  # noqa: BLE001 - a bug must not break the batch: dead-letter it
        failed = _failed("intake", payload, exc, topic=topic, partition=partition,
                         offset=offset, now=now)
        failed.counts.dead_lettered += 1
        return failed


def correlate(
    citizen: str, payload: bytes, state: CitizenState | None, matcher: Matcher,
    limits: StateLimits = DEFAULT_LIMITS, *, now: str, topic: str = "",
    partition: int | None = None, offset: int | None = None, max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[CitizenState, Outbox]:
    """Run the engine for one citizen's copy of an event; returns the new state and sends.

    A record that is no event (a hostile or broken writer on the repartition
    topic) or that the engine fails on leaves the state as it was and becomes
    a dead letter. An event the citizen's state limits refuse becomes a dead
    letter (``citizen_state_limit``) and the state returned is the one given
    (a new empty one for a citizen without state). ``topic``, ``partition``
    and ``offset`` locate the record in the dead letter; ``now`` is the
    notifications' ``created`` and the dead letters' ``received``.
    """
    unchanged = state if state is not None else CitizenState()
    try:
        return _correlate(citizen, payload, state, matcher, limits, topic=topic,
                          partition=partition, offset=offset, max_depth=max_depth, now=now)
    except Exception as exc:  # noqa: BLE001 - a bug must not break the batch: dead-letter it
        return unchanged, _failed("correlate", payload, exc, topic=topic, partition=partition,
                                  offset=offset, now=now)


def _correlate(
    citizen: str, payload: bytes, state: CitizenState | None, matcher: Matcher,
    limits: StateLimits, *, topic: str, partition: int | None, offset: int | None,
    max_depth: int, now: str,
) -> tuple[CitizenState, Outbox]:
    event = decode_trusted(payload, max_depth)  # intake validated it, unless forged
    if isinstance(event, Rejection):
        outbox = Outbox(dead_letters=[
            dead_letter(event, payload, topic=topic, partition=partition, offset=offset,
                        received=now)])
        outbox.counts.dead_letters.append(event.reason.value)
        return (state if state is not None else CitizenState()), outbox
    outcome = process(state, event, citizen, matcher, now, limits)
    if outcome.limit is not None:
        name, value = outcome.limit
        outbox = state_limit_letter(payload, citizen, name, value, topic=topic,
                                    partition=partition, offset=offset, now=now)
    else:
        outbox = Outbox()
    counts = outbox.counts
    counts.processed = True
    counts.trimmed = outcome.forgotten if outcome.limit is None else 0
    for notification in outcome.notifications:
        outbox.notifications.append((notification.recipient.key.encode(), notification.encode()))
        outbox.audit.append((citizen.encode(), AuditRecord.of(notification).encode()))
        counts.emitted.append(notification.rule)
    counts.matched = outcome.matched
    counts.throttled = outcome.throttled
    counts.suppressed = outcome.suppressed
    counts.duplicates = outcome.duplicates
    counts.stale = int(outcome.stale)
    return outcome.state, outbox


# Where in the event the growth came from, for the dead letter's path.
_LIMIT_PATHS = {"max_open_cases": "data.case.id", "max_tombstones": "data.case.id",
                "max_seen_events": "id"}
def state_limit_letter(
    payload: bytes | None, citizen: str, limit: str, value: int, *, topic: str,
    partition: int | None, offset: int | None, now: str,
) -> Outbox:
    """The dead letter for an event refused because the citizen's state would pass ``limit``.

    The refusal is counted with a prefix of the pseudonym (enough to find the
    citizen's other refusals, no more) for the agent's metric and log line.
    """
    short = citizen[:12]
    rejection = Rejection(RejectReason.CITIZEN_STATE_LIMIT, _LIMIT_PATHS.get(limit, ""),
                          f"the state of citizen {short}... would pass {limit} ({value})")
    outbox = Outbox(dead_letters=[dead_letter(
        rejection, payload, topic=topic, partition=partition, offset=offset, received=now)])
    outbox.counts.dead_letters.append(rejection.reason.value)
    outbox.counts.state_limits.append(
        StateLimitRefusal(short, limit, value, topic, partition, offset))
    return outbox


def too_large(encoded: dict[bytes, bytes | None], max_bytes: int) -> set[bytes]:
    """The citizens whose encoded new state is larger than ``max_bytes`` (logged).

    Defence in depth behind the engine's limits, which keep a state far below
    the cap: a record the changelog topic refuses would stop the worker, and
    the replay would refuse it again. The worker keeps these citizens' states
    as they were and dead-letters the batch's events of them instead.
    """
    found = {key for key, value in encoded.items()
             if value is not None and len(value) > max_bytes}
    for key in found:
        log.error("citizen_state_too_large", citizen=key[:12].decode(errors="replace"),
                  bytes=len(encoded[key] or b""), max_bytes=max_bytes)
    return found


def state_size_letter(
    payload: bytes | None, citizen: bytes, max_bytes: int, *, topic: str,
    partition: int | None, offset: int | None, now: str,
) -> Outbox:
    """What is sent for an event whose citizen's new state was too large: its dead letter."""
    return state_limit_letter(
        payload, citizen.decode(errors="replace"), "max_state_bytes", max_bytes, topic=topic,
        partition=partition, offset=offset, now=now)


def processing_failure(
    payload: bytes | None, error: Exception, *, topic: str, partition: int | None,
    offset: int | None, now: str,
) -> Outbox:
    """The dead letter for an event the engine failed on (a bug): kept, never dropped."""
    rejection = Rejection(RejectReason.PROCESSING_ERROR, "", type(error).__name__)
    outbox = Outbox(dead_letters=[dead_letter(
        rejection, payload, topic=topic, partition=partition, offset=offset, received=now)])
    outbox.counts.dead_letters.append(rejection.reason.value)
    return outbox


def _failed(step: str, payload: bytes | None, error: Exception, *, topic: str,
            partition: int | None, offset: int | None, now: str) -> Outbox:
    """The dead letter of an event a step failed on, logged by type only (no event data)."""
    log.error("event_processing_failed", step=step, topic=topic, partition=partition,
              offset=offset, error=type(error).__name__)
    try:
        return processing_failure(payload, error, topic=topic, partition=partition,
                                  offset=offset, now=now)
    except Exception as again:  # noqa: BLE001 - payload defeats even the dead letter: keep its place
        log.error("dead_letter_failed", step=step, error=type(again).__name__)
        letter = DeadLetter(
            reason=RejectReason.PROCESSING_ERROR.value, path="", message=type(error).__name__,
            problems=(), source="unknown", event_id=None, topic=topic, partition=partition,
            offset=offset, received=now, payload="", payload_truncated=True)
        return Outbox(dead_letters=[(b"unknown", letter.encode())])

"""The engine's one entry point: an event and a citizen's state in, notifications out.

Pure: no I/O, no clock of its own (the caller passes ``created``), so the
worker, the backtest and the tests get the same answers for the same input.
Notification ids are deterministic from (rule, event, recipient, related case),
which together with the state's memory of sent ids makes re-delivered events
harmless. The state is bounded per citizen (:mod:`advisering.engine.limits`):
an event that would pass a limit changes nothing and notifies nobody.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from advisering.engine.event import EngineEvent
from advisering.engine.limits import DEFAULT_LIMITS, StateLimits, over_limit, trim
from advisering.engine.matcher import CompiledRule, Matcher
from advisering.engine.notification import Notification, Recipient, RelatedCase, Trigger
from advisering.engine.overview import (
    CitizenState,
    OpenCase,
    apply_event,
    prune,
    seen_key,
    throttle_key,
)
from advisering.labels import EVENT_NAMES, department_name


@dataclass(slots=True)
class Outcome:
    """What one event did: the new state, the notifications and the counts behind them."""

    state: CitizenState
    notifications: list[Notification] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    duplicates: int = 0
    stale: bool = False
    limit: tuple[str, int] | None = None  # (name, value) of the limit the event would pass
    forgotten: int = 0  # sent ids and throttle windows trimmed to their limits


@dataclass(frozen=True, slots=True)
class HeldBack:
    """A target a matching rule did not notify: this event told them before, or the throttle."""

    rule: str
    reason: Literal["duplicate", "throttled"]
    recipient: str  # the recipient key (:attr:`Recipient.key`)
    related: str  # the id of the case through which the recipient knows the citizen
    until: float | None = None  # the end of the throttle window, epoch seconds


def notification_id(
    rule_id: str, event: EngineEvent, citizen: str, recipient: str, related: str
) -> str:
    """Deterministic: the same (rule, event, citizen, recipient, related case) gives the same id.

    The citizen is part of it: one event about two citizens (say, both parents
    of a children's case) gives two notifications, not one id twice.
    """
    raw = "\x1f".join((rule_id, event.source, event.id, citizen, recipient, related))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def process(
    state: CitizenState | None, event: EngineEvent, citizen: str, matcher: Matcher, created: str,
    limits: StateLimits = DEFAULT_LIMITS, held_back: list[HeldBack] | None = None,
) -> Outcome:
    """Apply ``event`` to the citizen's state and evaluate the rules against it.

    An event that would take the state past a hard limit is refused: the
    outcome has ``limit`` set, the given state (or a new empty one) and no
    notifications. Given a ``held_back`` list, every target a matching rule
    did not notify is added to it: the engine's own reasons, which
    :func:`~advisering.engine.explain.explain` reports instead of working them out again.
    """
    seen = seen_key(event.source, event.id)
    if state is None:
        new = CitizenState()
    elif seen in state.seen:
        # A re-delivered event (a retry, a replay after a crash): its news is in
        # the overview and its notifications were sent. Matching it again against
        # today's overview could reach cases opened since, so it does nothing.
        return Outcome(state, duplicates=1)
    else:
        new = state.copy()
    at = event.time.timestamp()
    outcome = Outcome(new, stale=not apply_event(new, event, at))
    new.seen[seen] = at
    passed = over_limit(state, new, limits)  # three len() calls unless a map is full
    if passed is not None:
        return Outcome(state if state is not None else CitizenState(), limit=passed)
    matching = matcher.matching(event)
    if not matching:  # most events: the overview changes, no rule fires
        prune(new)
        return outcome
    for compiled in matching:
        rule = compiled.rule
        outcome.matched.append(rule.id)
        case = event.data.case
        if case is not None and case.sensitivity == "foelsomme" and not rule.allow_sensitive:
            outcome.suppressed.append(rule.id)
            continue
        _notify(compiled, event, citizen, at, created, outcome, held_back)
    prune(new)
    if (len(new.sent) > limits.max_sent_notifications
            or len(new.throttle) > limits.max_throttle_windows):
        outcome.forgotten = trim(new, limits)
    return outcome


def _notify(
    compiled: CompiledRule, event: EngineEvent, citizen: str, at: float, created: str,
    outcome: Outcome, held_back: list[HeldBack] | None,
) -> None:
    """Tell each target of a matching rule, unless this event told them before or throttled."""
    rule_id = compiled.rule.id
    state = outcome.state
    for recipient, related, values in targets(compiled, event, state):
        nid = notification_id(rule_id, event, citizen, recipient.key, related.id)
        if nid in state.sent:
            outcome.duplicates += 1
            if held_back is not None:
                held_back.append(HeldBack(rule_id, "duplicate", recipient.key, related.id))
            continue
        if compiled.throttle_seconds is not None:
            window = throttle_key(rule_id, recipient.key)
            until = state.throttle.get(window)
            if until is not None and until > at:
                outcome.throttled.append(rule_id)
                if held_back is not None:
                    held_back.append(
                        HeldBack(rule_id, "throttled", recipient.key, related.id, until))
                continue
            state.throttle[window] = at + compiled.throttle_seconds
        state.sent[nid] = at
        outcome.notifications.append(
            _notification(nid, compiled, event, citizen, recipient, related, values, created)
        )


def targets(
    compiled: CompiledRule, event: EngineEvent, state: CitizenState
) -> list[tuple[Recipient, OpenCase, dict[str, str]]]:
    """(recipient, the case through which they know the citizen, placeholder values).

    The rule's conditions on related cases are :meth:`CompiledRule.first_failed_related`,
    which the explanation of a rule that told nobody asks too.
    """
    rule = compiled.rule
    base: dict[str, str] | None = None  # the event's placeholder values, once a target is found
    own_case = event.data.case
    found = []
    if rule.notify == "related":
        for case in state.cases.values():
            if compiled.first_failed_related(case, own_case) is not None:
                continue
            if base is None:
                base = _event_values(event, rule.title)
            values = dict(base)
            values.update({
                "related.id": case.id, "related.department": department_name(case.department),
                "related.kle": case.kle, "related.source": case.source,
            })
            found.append((Recipient(case.caseworker, case.unit, case.department), case, values))
        return found
    if own_case is None or own_case.id not in state.cases:
        return found
    mine = state.cases[own_case.id]
    departments = other_departments(state, own_case.department, rule.allow_sensitive)
    if not departments:
        return found
    values = _event_values(event, rule.title)
    values.update({
        "case.id": mine.id, "case.department": department_name(mine.department),
        "departments": ", ".join(department_name(d) for d in departments),
    })
    found.append((Recipient(mine.caseworker, mine.unit, mine.department), mine, values))
    return found


def other_departments(state: CitizenState, own: str, allow_sensitive: bool) -> list[str]:
    """The departments besides ``own`` with an open case (``notify: origin``), sorted.

    Foelsomme cases count only for a rule that allows them.
    """
    return sorted({
        case.department for case in state.cases.values()
        if case.department != own and (case.sensitivity != "foelsomme" or allow_sensitive)
    })


def _event_values(event: EngineEvent, title: str) -> dict[str, str]:
    department = event.department
    return {
        "event.date": event.time.strftime("%d.%m.%Y"),
        "event.type": EVENT_NAMES.get(event.type, event.type),
        "event.department": department_name(department) if department else event.source,
        "event.source": event.source,
        "rule.title": title,
    }


def _notification(
    nid: str, compiled: CompiledRule, event: EngineEvent, citizen: str, recipient: Recipient,
    related: OpenCase, values: dict[str, str], created: str,
) -> Notification:
    rule = compiled.rule
    return Notification(
        id=nid, rule=rule.id, title=rule.title, severity=rule.severity, recipient=recipient,
        related_case=RelatedCase(related.id, related.source, related.kle),
        trigger=Trigger(event.id, event.source, event.type, event.department,
                        event.time.isoformat()),
        citizen=citizen, message=compiled.template.render(values),
        legal_basis=rule.legal_basis, created=created,
    )

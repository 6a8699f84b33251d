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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from advisering.engine.limits import DEFAULT_LIMITS, StateLimits, over_limit, trim
from advisering.engine.matcher import CompiledRule, Matcher, kle_matches
from advisering.engine.overview import (
    CitizenState,
    OpenCase,
    apply_event,
    prune,
    seen_key,
    throttle_key,
)
from advisering.events import CaseEvent
from advisering.labels import EVENT_NAMES, department_name


@dataclass(slots=True)
class Outcome:
    """What one event did: the new state, the notifications and the counts behind them."""

    state: CitizenState
    notifications: list[dict[str, Any]] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    duplicates: int = 0
    stale: bool = False
    limit: tuple[str, int] | None = None  # (name, value) of the limit the event would pass
    forgotten: int = 0  # sent ids and throttle windows trimmed to their limits


def recipient_key(recipient: Mapping[str, Any]) -> str:
    """Whom a notification is for: the caseworker, or ``unit:<unit>`` without one.

    The Kafka key of a notification and the owner of its inbox entry, webhook
    queue and e-mail digest; one rule for all of them.
    """
    caseworker = recipient.get("caseworker")
    return _recipient_key(caseworker if isinstance(caseworker, str) else None,
                          recipient.get("unit"))


def _recipient_key(caseworker: str | None, unit: object) -> str:
    return caseworker if caseworker else f"unit:{unit}"


@dataclass(frozen=True)
class Recipient:
    caseworker: str | None
    unit: str
    department: str

    @property
    def key(self) -> str:
        """The Kafka key and inbox owner (:func:`recipient_key`, without building the JSON)."""
        return _recipient_key(self.caseworker, self.unit)

    def to_json(self) -> dict[str, Any]:
        return {"caseworker": self.caseworker, "unit": self.unit, "department": self.department}


def notification_id(
    rule_id: str, event: CaseEvent, citizen: str, recipient: str, related: str
) -> str:
    """Deterministic: the same (rule, event, citizen, recipient, related case) gives the same id.

    The citizen is part of it: one event about two citizens (say, both parents
    of a children's case) gives two notifications, not one id twice.
    """
    raw = "\x1f".join((rule_id, event.source, event.id, citizen, recipient, related))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def process(
    state: CitizenState | None, event: CaseEvent, citizen: str, matcher: Matcher, created: str,
    limits: StateLimits = DEFAULT_LIMITS,
) -> Outcome:
    """Apply ``event`` to the citizen's state and evaluate the rules against it.

    An event that would take the state past a hard limit is refused: the
    outcome has ``limit`` set, the given state (or a new empty one) and no
    notifications.
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
        for recipient, related, values in _targets(compiled, event, new):
            nid = notification_id(rule.id, event, citizen, recipient.key, related.id)
            if nid in new.sent:
                outcome.duplicates += 1
                continue
            if compiled.throttle_seconds is not None:
                window = throttle_key(rule.id, recipient.key)
                if new.throttle.get(window, float("-inf")) > at:
                    outcome.throttled.append(rule.id)
                    continue
                new.throttle[window] = at + compiled.throttle_seconds
            new.sent[nid] = at
            outcome.notifications.append(
                _notification(nid, compiled, event, citizen, recipient, related, values, created)
            )
    prune(new)
    if (len(new.sent) > limits.max_sent_notifications
            or len(new.throttle) > limits.max_throttle_windows):
        outcome.forgotten = trim(new, limits)
    return outcome


def _targets(
    compiled: CompiledRule, event: CaseEvent, state: CitizenState
) -> list[tuple[Recipient, OpenCase, dict[str, str]]]:
    """(recipient, the case through which they know the citizen, placeholder values)."""
    rule = compiled.rule
    base: dict[str, str] | None = None  # the event's placeholder values, once a target is found
    own_case = event.data.case
    own_department = own_case.department if own_case else None
    targets = []
    if rule.notify == "related":
        for case in state.cases.values():
            if own_case is not None and case.id == own_case.id:
                continue
            if case.department == own_department:
                continue
            if compiled.related_departments and case.department not in compiled.related_departments:
                continue
            if not kle_matches(case.kle, compiled.related_kle):
                continue
            if compiled.related_statuses and case.status not in compiled.related_statuses:
                continue
            if base is None:
                base = _event_values(event, rule.title)
            values = dict(base)
            values.update({
                "related.id": case.id, "related.department": department_name(case.department),
                "related.kle": case.kle, "related.source": case.source,
            })
            targets.append((Recipient(case.caseworker, case.unit, case.department), case, values))
        return targets
    if own_case is None or own_case.id not in state.cases:
        return targets
    mine = state.cases[own_case.id]
    departments = sorted({
        case.department for case in state.cases.values()
        if case.department != own_case.department
        and (case.sensitivity != "foelsomme" or rule.allow_sensitive)
    })
    if not departments:
        return targets
    values = _event_values(event, rule.title)
    values.update({
        "case.id": mine.id, "case.department": department_name(mine.department),
        "departments": ", ".join(department_name(d) for d in departments),
    })
    targets.append((Recipient(mine.caseworker, mine.unit, mine.department), mine, values))
    return targets


def _event_values(event: CaseEvent, title: str) -> dict[str, str]:
    department = event.department
    return {
        "event.date": event.time.strftime("%d.%m.%Y"),
        "event.type": EVENT_NAMES.get(event.type, event.type),
        "event.department": department_name(department) if department else event.source,
        "event.source": event.source,
        "rule.title": title,
    }


def _notification(
    nid: str, compiled: CompiledRule, event: CaseEvent, citizen: str, recipient: Recipient,
    related: OpenCase, values: dict[str, str], created: str,
) -> dict[str, Any]:
    rule = compiled.rule
    return {
        "id": nid,
        "rule": rule.id,
        "title": rule.title,
        "severity": rule.severity,
        "recipient": recipient.to_json(),
        "related_case": {"id": related.id, "source": related.source, "kle": related.kle},
        "trigger": {
            "event_id": event.id, "source": event.source, "type": event.type,
            "department": event.department, "time": event.time.isoformat(),
        },
        "citizen": citizen,
        "message": compiled.template.render(values),
        "legal_basis": rule.legal_basis,
        "created": created,
    }


def audit_record(notification: dict[str, Any]) -> dict[str, Any]:
    """The accountability record of one disclosure (principle 6 of the design)."""
    return {
        "notification_id": notification["id"],
        "citizen": notification["citizen"],
        "recipient": notification["recipient"],
        "rule": notification["rule"],
        "legal_basis": notification["legal_basis"],
        "disclosed": notification["message"],
        "related_case": notification["related_case"],
        "trigger": notification["trigger"],
        "created": notification["created"],
    }

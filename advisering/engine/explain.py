"""Why a rule did or did not fire for one event: the engine's answer, in words.

Operators write a rule against a concrete case (``advisering rules test``).
Seeing only the notifications is not enough: when a rule stays silent they need
to know which condition stopped it. :func:`explain` runs the real
:func:`~advisering.engine.evaluate.process` and then, for every rule that names
the event's type, says whether it fired and for whom, or what it missed: a
``when`` condition, a related case, the sensitivity guard, the throttle, or an
earlier notification. Pure like the rest of the engine, so the explanation can
never disagree with what the worker would do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from advisering.engine.evaluate import (
    Outcome,
    _targets,  # the engine's own choice of recipients, so explanations cannot drift
    notification_id,
    process,
)
from advisering.engine.event import EngineEvent
from advisering.engine.matcher import CompiledRule, Matcher, kle_matches, lookup
from advisering.engine.notification import Notification
from advisering.engine.overview import CitizenState, OpenCase, throttle_key

Verdict = Literal["fired", "condition", "no_target", "suppressed", "throttled", "duplicate"]


@dataclass(frozen=True)
class RuleVerdict:
    """One rule's result for one citizen's copy of an event.

    ``condition`` names what stopped the rule, as a field path of the rule
    (``when.department``, ``related.kle``) or ``allow_sensitive`` / ``throttle``.
    A rule that fired for some recipients and was throttled for others has a
    verdict of each kind.
    """

    rule: str
    verdict: Verdict
    condition: str | None = None
    reason: str = ""
    notifications: tuple[Notification, ...] = ()

    def to_json(self) -> dict[str, str]:
        out: dict[str, str] = {"rule": self.rule, "verdict": self.verdict}
        if self.condition is not None:
            out["condition"] = self.condition
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Explanation:
    """The outcome of one event for one citizen, with a verdict per rule of its type."""

    outcome: Outcome
    verdicts: tuple[RuleVerdict, ...] = ()
    repeated: bool = False  # the event was processed before: nothing is evaluated again

    @property
    def fired(self) -> list[RuleVerdict]:
        return [v for v in self.verdicts if v.verdict == "fired"]

    @property
    def almost(self) -> list[RuleVerdict]:
        return [v for v in self.verdicts if v.verdict != "fired"]


def explain(
    state: CitizenState | None, event: EngineEvent, citizen: str, matcher: Matcher, created: str
) -> Explanation:
    """Process ``event`` for ``citizen`` and say, for each rule of its type, what happened."""
    outcome = process(state, event, citizen, matcher, created)
    if outcome.limit is not None:  # refused by a state limit (outcome.limit): not evaluated
        return Explanation(outcome)
    if state is not None and outcome.state is state:
        return Explanation(outcome, repeated=True)
    verdicts: list[RuleVerdict] = []
    for compiled in sorted(_of_type(matcher, event), key=lambda c: c.rule.id):
        verdicts.extend(_verdicts(compiled, event, citizen, state, outcome))
    return Explanation(outcome, tuple(verdicts))


def _of_type(matcher: Matcher, event: EngineEvent) -> list[CompiledRule]:
    # Every rule naming the type, not the matcher's candidates: a rule an index
    # leaves out (another department, another KLE) is exactly the near miss to show.
    return [c for c in matcher.compiled if event.type in c.rule.when.type]


def _verdicts(
    compiled: CompiledRule, event: EngineEvent, citizen: str, before: CitizenState | None,
    outcome: Outcome,
) -> list[RuleVerdict]:
    rule_id = compiled.rule.id
    failed = compiled.first_failed_condition(event)
    if failed is not None:
        reason = condition_reason(compiled, event, failed)
        return [RuleVerdict(rule_id, "condition", failed, reason)]
    if rule_id in outcome.suppressed:
        return [RuleVerdict(
            rule_id, "suppressed", "allow_sensitive",
            "the event's case is foelsomme (sensitive) and the rule does not set "
            "allow_sensitive: true",
        )]
    verdicts = []
    fired = tuple(n for n in outcome.notifications if n.rule == rule_id)
    if fired:
        verdicts.append(RuleVerdict(rule_id, "fired", notifications=fired))
    told = {n.id for n in fired}
    sent_before = before.sent if before is not None else {}
    targets = _targets(compiled, event, outcome.state)
    for recipient, related, _ in targets:
        nid = notification_id(rule_id, event, citizen, recipient.key, related.id)
        if nid in told:
            continue
        if nid in sent_before:
            verdicts.append(RuleVerdict(
                rule_id, "duplicate", None,
                f"{recipient.key} was already told about case {related.id} by this event",
            ))
            continue
        until = outcome.state.throttle.get(throttle_key(rule_id, recipient.key))
        when = _local(until, event) if until is not None else "later"
        verdicts.append(RuleVerdict(
            rule_id, "throttled", "throttle",
            f"{recipient.key} (case {related.id}) was already told by this rule about this "
            f"citizen; throttle {compiled.rule.throttle} lasts until {when}",
        ))
    if not targets:
        condition, reason = no_target_reason(compiled, event, outcome.state)
        verdicts.append(RuleVerdict(rule_id, "no_target", condition, reason))
    return verdicts


def _local(seconds: float, event: EngineEvent) -> str:
    """A time in the event's own UTC offset, as the operator wrote the scenario."""
    return dt.datetime.fromtimestamp(seconds, event.time.tzinfo).isoformat(timespec="minutes")


def _wanted(values: frozenset[Any] | tuple[str, ...]) -> str:
    return ", ".join(sorted(str(v) for v in values))


def condition_reason(compiled: CompiledRule, event: EngineEvent, condition: str) -> str:
    """What the event has at a failed ``when`` condition, and what the rule wants there."""
    case = event.data.case
    if condition == "when.source":
        return f"source is {event.source!r}; the rule wants {_wanted(compiled.sources)}"
    if case is None:
        return f"the event has no case, and the rule sets {condition}"
    if condition == "when.department":
        return f"department is {case.department!r}; the rule wants {_wanted(compiled.departments)}"
    if condition == "when.kle":
        return f"KLE {case.kle} is not under {_wanted(compiled.kle)}"
    if condition == "when.status":
        return f"status is {case.status!r}; the rule wants {_wanted(compiled.statuses)}"
    if condition == "when.previous_status":
        return (f"previous_status is {case.previous_status!r}; the rule wants "
                f"{_wanted(compiled.previous_statuses)}")
    for path, allowed in compiled.where:
        if condition == "when.where." + ".".join(path):
            value = lookup(event, path)
            shown = "absent" if value is None else repr(value)
            return f"data.{'.'.join(path)} is {shown}; the rule wants {_wanted(allowed)}"
    return condition


def _case_miss(
    compiled: CompiledRule, event: EngineEvent, case: OpenCase,
) -> tuple[str, str] | None:
    """(condition, reason) why an open case is not a related case of the rule, or None."""
    own = event.data.case
    if own is not None and case.id == own.id:
        return ("own case", "it is the event's own case")
    if own is not None and case.department == own.department:
        return ("own department", f"it is in the event's own department {case.department!r}")
    if compiled.related_departments and case.department not in compiled.related_departments:
        return ("related.department", f"department {case.department!r} is not "
                f"{_wanted(compiled.related_departments)}")
    if not kle_matches(case.kle, compiled.related_kle):
        return ("related.kle", f"KLE {case.kle} is not under {_wanted(compiled.related_kle)}")
    if compiled.related_statuses and case.status not in compiled.related_statuses:
        return ("related.status", f"status {case.status!r} is not "
                f"{_wanted(compiled.related_statuses)}")
    return None


def no_target_reason(
    compiled: CompiledRule, event: EngineEvent, state: CitizenState
) -> tuple[str, str]:
    """(condition, reason) why every ``when`` condition held and still nobody was told."""
    own = event.data.case
    if compiled.rule.notify == "origin":
        if own is None or own.id not in state.cases:
            return ("notify", "notify: origin needs the event's own case to be open")
        hidden = any(c.sensitivity == "foelsomme" and c.department != own.department
                     for c in state.cases.values())
        extra = (" (cases marked foelsomme are left out without allow_sensitive: true)"
                 if hidden and not compiled.rule.allow_sensitive else "")
        return ("notify", f"no other department has an open case with this citizen{extra}")
    conditions, reasons = [], []
    for case in sorted(state.cases.values(), key=lambda c: c.id):
        miss = _case_miss(compiled, event, case)
        if miss is not None and miss[0] != "own case":
            conditions.append(miss[0])
            reasons.append(f"{case.id}: {miss[1]}")
    if not reasons:
        return ("related", "the citizen has no other open case in the overview")
    condition = conditions[0] if len(set(conditions)) == 1 else "related"
    return (condition, "no related case: " + "; ".join(reasons))

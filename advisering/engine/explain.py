"""Why a rule did or did not fire for one event: the engine's answer, in words.

Operators write a rule against a concrete case (``advisering rules test``).
Seeing only the notifications is not enough: when a rule stays silent they need
to know which condition stopped it. :func:`explain` runs the real
:func:`~advisering.engine.evaluate.process` and then, for every rule that names
the event's type, says whether it fired and for whom, or what it missed: a
``when`` condition, a related case, the sensitivity guard, the throttle, or an
earlier notification. Which rules matched, and which targets were held back
and why, are the engine's own answers (``Outcome`` and ``held_back``); the
reasons in words come from the same condition checks the engine runs
(:meth:`~advisering.engine.matcher.CompiledRule.first_failed_condition`,
:meth:`~advisering.engine.matcher.CompiledRule.first_failed_related`), so the
explanation cannot disagree with what the worker does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from advisering.engine.evaluate import HeldBack, Outcome, other_departments, process
from advisering.engine.event import EngineEvent
from advisering.engine.limits import DEFAULT_LIMITS, StateLimits
from advisering.engine.matcher import CompiledRule, Matcher, lookup
from advisering.engine.notification import Notification
from advisering.engine.overview import CitizenState, OpenCase

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
        """The verdict as JSON, leaving out the condition and reason when there are none."""
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
        """The verdicts of the rules that fired."""
        return [v for v in self.verdicts if v.verdict == "fired"]

    @property
    def almost(self) -> list[RuleVerdict]:
        """The verdicts of the rules that matched the type but did not fire, with why."""
        return [v for v in self.verdicts if v.verdict != "fired"]


def explain(
    state: CitizenState | None, event: EngineEvent, citizen: str, matcher: Matcher, created: str,
    limits: StateLimits = DEFAULT_LIMITS,
) -> Explanation:
    """Process ``event`` for ``citizen`` and say, for each rule of its type, what happened."""
    held_back: list[HeldBack] = []
    outcome = process(state, event, citizen, matcher, created, limits, held_back=held_back)
    if outcome.limit is not None:  # refused by a state limit (outcome.limit): not evaluated
        return Explanation(outcome)
    if state is not None and outcome.state is state:
        return Explanation(outcome, repeated=True)
    matched = set(outcome.matched)
    verdicts: list[RuleVerdict] = []
    # Every rule naming the type, not only the matcher's candidates: a rule the
    # index leaves out (another department, another KLE) is exactly the near miss to show.
    for compiled in matcher.of_type(event):
        if compiled.rule.id in matched:
            verdicts.extend(_verdicts(compiled, event, outcome, held_back))
        else:
            # None would mean the index and the conditions disagree, which the
            # matcher's tests rule out; the engine's answer (not matched) stands.
            failed = compiled.first_failed_condition(event) or "when"
            reason = condition_reason(compiled, event, failed)
            verdicts.append(RuleVerdict(compiled.rule.id, "condition", failed, reason))
    return Explanation(outcome, tuple(verdicts))


def _verdicts(
    compiled: CompiledRule, event: EngineEvent, outcome: Outcome, held_back: list[HeldBack]
) -> list[RuleVerdict]:
    """What the engine did with a rule whose ``when`` conditions held."""
    rule_id = compiled.rule.id
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
    held = [h for h in held_back if h.rule == rule_id]
    for h in held:
        if h.reason == "duplicate":
            verdicts.append(RuleVerdict(
                rule_id, "duplicate", None,
                f"{h.recipient} was already told about case {h.related} by this event",
            ))
            continue
        when = _local(h.until, event) if h.until is not None else "later"
        verdicts.append(RuleVerdict(
            rule_id, "throttled", "throttle",
            f"{h.recipient} (case {h.related}) was already told by this rule about this "
            f"citizen; throttle {compiled.rule.throttle} lasts until {when}",
        ))
    if not fired and not held:
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


def related_reason(compiled: CompiledRule, case: OpenCase, condition: str) -> str:
    """What an open case has at a failed related-case condition, and what the rule wants."""
    if condition == "own case":
        return "it is the event's own case"
    if condition == "own department":
        return f"it is in the event's own department {case.department!r}"
    if condition == "related.department":
        return (f"department {case.department!r} is not "
                f"{_wanted(compiled.related_departments)}")
    if condition == "related.kle":
        return f"KLE {case.kle} is not under {_wanted(compiled.related_kle)}"
    if condition == "related.status":
        return f"status {case.status!r} is not {_wanted(compiled.related_statuses)}"
    return condition


def no_target_reason(
    compiled: CompiledRule, event: EngineEvent, state: CitizenState
) -> tuple[str, str]:
    """(condition, reason) why every ``when`` condition held and still nobody was told."""
    own = event.data.case
    if compiled.rule.notify == "origin":
        if own is None or own.id not in state.cases:
            return ("notify", "notify: origin needs the event's own case to be open")
        # Nobody was told, so any other department's case left is a foelsomme one.
        hidden = not compiled.rule.allow_sensitive and bool(
            other_departments(state, own.department, allow_sensitive=True))
        extra = (" (cases marked foelsomme are left out without allow_sensitive: true)"
                 if hidden else "")
        return ("notify", f"no other department has an open case with this citizen{extra}")
    conditions, reasons = [], []
    for case in sorted(state.cases.values(), key=lambda c: c.id):
        miss = compiled.first_failed_related(case, own)
        if miss is not None and miss != "own case":
            conditions.append(miss)
            reasons.append(f"{case.id}: {related_reason(compiled, case, miss)}")
    if not reasons:
        return ("related", "the citizen has no other open case in the overview")
    condition = conditions[0] if len(set(conditions)) == 1 else "related"
    return (condition, "no related case: " + "; ".join(reasons))

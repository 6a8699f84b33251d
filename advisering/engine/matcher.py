"""Compiled rules and the matcher that finds which rules an event triggers.

Rules are indexed by event type, so an event is only checked against the
rules that name its type; the remaining conditions are precompiled into sets
and prefix tuples.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from advisering.engine.rules import Rule, RuleSet
from advisering.events import CaseEvent


def kle_matches(kle: str, prefixes: tuple[str, ...]) -> bool:
    """True when ``kle`` lies under one of the prefixes, by whole dot-groups."""
    return not prefixes or any(kle == p or kle.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Template:
    """A message split once into literal text and whitelisted placeholder names."""

    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def compile(cls, message: str) -> Template:
        return cls(tuple(
            (literal, name) for literal, name, _, _ in string.Formatter().parse(message)
        ))

    def render(self, values: dict[str, str]) -> str:
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                out.append(values.get(name, ""))
        return "".join(out)


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    departments: frozenset[str]
    kle: tuple[str, ...]
    statuses: frozenset[str]
    previous_statuses: frozenset[str]
    sources: frozenset[str]
    where: tuple[tuple[tuple[str, ...], frozenset[Any]], ...]
    related_departments: frozenset[str]
    related_kle: tuple[str, ...]
    related_statuses: frozenset[str]
    template: Template
    throttle_seconds: float | None

    @classmethod
    def compile(cls, rule: Rule) -> CompiledRule:
        window = rule.throttle_window
        return cls(
            rule=rule,
            departments=frozenset(rule.when.department),
            kle=rule.when.kle,
            statuses=frozenset(rule.when.status),
            previous_statuses=frozenset(rule.when.previous_status),
            sources=frozenset(rule.when.source),
            where=tuple((tuple(path.split(".")), frozenset(values))
                        for path, values in rule.when.where.items()),
            related_departments=frozenset(rule.related.department),
            related_kle=rule.related.kle,
            related_statuses=frozenset(rule.related.status),
            template=Template.compile(rule.message),
            throttle_seconds=window.total_seconds() if window else None,
        )

    def first_failed_condition(self, event: CaseEvent) -> str | None:
        """None when the event meets every ``when`` condition, else the first that fails."""
        case = event.data.case
        if self.sources and event.source not in self.sources:
            return "when.source"
        if self.departments and (case is None or case.department not in self.departments):
            return "when.department"
        if self.kle and (case is None or not kle_matches(case.kle, self.kle)):
            return "when.kle"
        if self.statuses and (case is None or case.status not in self.statuses):
            return "when.status"
        if self.previous_statuses and (
            case is None or case.previous_status not in self.previous_statuses
        ):
            return "when.previous_status"
        for path, allowed in self.where:
            if lookup(event, path) not in allowed:
                return "when.where." + ".".join(path)
        return None


def lookup(event: CaseEvent, path: tuple[str, ...]) -> Any:
    """The value at a dotted path inside the event's ``data`` (None when absent)."""
    head, rest = path[0], path[1:]
    data = event.data
    current: Any
    if head == "case":
        current = data.case.model_dump() if data.case else None
    elif head == "parties":
        return None
    else:
        current = (data.model_extra or {}).get(head)
    for part in rest:
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    if isinstance(current, dict | list):
        return None
    return current


class Matcher:
    """The rule set, compiled and indexed by event type."""

    def __init__(self, rules: RuleSet | Iterable[Rule]) -> None:
        rule_list = rules.rules if isinstance(rules, RuleSet) else tuple(rules)
        self.version = rules.version if isinstance(rules, RuleSet) else "local"
        self.compiled = tuple(CompiledRule.compile(r) for r in rule_list if r.enabled)
        index: dict[str, list[CompiledRule]] = {}
        for compiled in self.compiled:
            for event_type in compiled.rule.when.type:
                index.setdefault(event_type, []).append(compiled)
        self._by_type = {k: tuple(v) for k, v in index.items()}

    def candidates(self, event: CaseEvent) -> tuple[CompiledRule, ...]:
        return self._by_type.get(event.type, ())

    def matching(self, event: CaseEvent) -> list[CompiledRule]:
        return [c for c in self.candidates(event) if c.first_failed_condition(event) is None]

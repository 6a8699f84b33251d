"""Compiled rules and the matcher that finds which rules an event triggers.

Rules are indexed by event type, department and KLE prefix (see
:mod:`advisering.engine.index`), so an event is only checked against the few
rules those keys leave; the remaining conditions are precompiled into sets.
:func:`naive_matching` keeps the plain loop over every rule as the reference
the index is tested and benchmarked against.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from advisering.engine.event import CaseView, EngineEvent
from advisering.engine.index import IndexKeys, RuleIndex
from advisering.engine.overview import OpenCase
from advisering.engine.rules import Rule, RuleSet
from advisering.events import CaseRef


def kle_matches(kle: str, prefixes: tuple[str, ...]) -> bool:
    """True when ``kle`` lies under one of the prefixes, by whole dot-groups."""
    return not prefixes or any(kle == p or kle.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Template:
    """A message split once into literal text and whitelisted placeholder names."""

    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def compile(cls, message: str) -> Template:
        """Split ``message`` once, so rendering it per notification is only joins."""
        return cls(tuple(
            (literal, name) for literal, name, _, _ in string.Formatter().parse(message)
        ))

    def render(self, values: dict[str, str]) -> str:
        """The message with each placeholder replaced by its value (empty when it has none)."""
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                out.append(values.get(name, ""))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its conditions as sets and tuples, ready to be checked many times.

    Slotted, and the fields the hot path reads (after the index) come first, so
    checking a candidate touches as little memory as possible; with thousands
    of rules that, not the arithmetic, is what a match costs.
    """

    rule: Rule
    # False when the index answers every ``when`` condition, so a candidate matches as is.
    checks_beyond_index: bool
    sources: frozenset[str]
    statuses: frozenset[str]
    previous_statuses: frozenset[str]
    where: tuple[tuple[tuple[str, ...], frozenset[Any]], ...]
    types: frozenset[str]
    departments: frozenset[str]
    kle: tuple[str, ...]
    related_departments: frozenset[str]
    related_kle: tuple[str, ...]
    related_statuses: frozenset[str]
    template: Template
    throttle_seconds: float | None

    @classmethod
    def compile(cls, rule: Rule) -> CompiledRule:
        """The rule's conditions as sets and tuples, its message as a template."""
        window = rule.throttle_window
        return cls(
            rule=rule,
            types=frozenset(rule.when.type),
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
            checks_beyond_index=bool(
                rule.when.source or rule.when.status or rule.when.previous_status
                or rule.when.where
            ),
        )

    @property
    def index_keys(self) -> IndexKeys:
        """The type, department and KLE values the matcher's index files the rule under."""
        return IndexKeys(self.rule.when.type, self.rule.when.department, self.kle)

    def first_failed_condition(self, event: EngineEvent) -> str | None:
        """None when the event meets every ``when`` condition, else the first that fails.

        The order (source, department, KLE, status, previous status, where) is
        the order an explanation names them in. Each condition is written once:
        the index's (department, KLE) here, the rest in
        :meth:`failed_beyond_index`, which the live matcher runs on its candidates.
        """
        beyond = self.failed_beyond_index(event)
        if beyond == "when.source":
            return beyond
        case = event.data.case
        if self.departments and (case is None or case.department not in self.departments):
            return "when.department"
        if self.kle and (case is None or not kle_matches(case.kle, self.kle)):
            return "when.kle"
        return beyond

    def failed_beyond_index(self, event: EngineEvent) -> str | None:
        """The first failing condition the index does not answer, or None.

        Those are source, status, previous status and where; for a candidate of the
        index, None means the rule matches.
        """
        if self.sources and event.source not in self.sources:
            return "when.source"
        case = event.data.case
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

    def first_failed_related(self, case: OpenCase, own: CaseView | None) -> str | None:
        """Why an open case is not a related case of the rule (None: it is one).

        The engine's choice of whom to tell (``notify: related``) and the
        explanation of why nobody was told both ask this.
        """
        if own is not None:
            if case.id == own.id:
                return "own case"
            if case.department == own.department:
                return "own department"
        if self.related_departments and case.department not in self.related_departments:
            return "related.department"
        if not kle_matches(case.kle, self.related_kle):
            return "related.kle"
        if self.related_statuses and case.status not in self.related_statuses:
            return "related.status"
        return None


CASE_FIELDS = frozenset(CaseRef.model_fields)


def lookup(event: EngineEvent, path: tuple[str, ...]) -> Any:
    """The value at a dotted path inside the event's ``data`` (None when absent)."""
    head, rest = path[0], path[1:]
    data = event.data
    current: Any
    if head == "case":  # the case's fields are flat: only case.<field> has a value
        if data.case is None or len(rest) != 1 or rest[0] not in CASE_FIELDS:
            return None
        return getattr(data.case, rest[0])
    if head == "parties":
        return None
    current = (data.model_extra or {}).get(head)
    for part in rest:
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    if isinstance(current, dict | list):
        return None
    return current


def naive_matching(compiled: Iterable[CompiledRule], event: EngineEvent) -> list[CompiledRule]:
    """Every rule checked in full: the reference for the index's tests and benchmark."""
    return [c for c in compiled
            if event.type in c.types and c.first_failed_condition(event) is None]


# Distinct (event type, department, KLE) keys remembered; the KLE plan and the
# vocabulary bound them in practice, the limit bounds them in theory.
MEMO_LIMIT = 1 << 16


class Matcher:
    """The rule set, compiled, in rule id order, and indexed by type, department and KLE.

    The index's answer for an (event type, department, KLE) key is remembered:
    a stream repeats a bounded set of such keys, so after warm-up finding the
    candidates is three small dictionary look-ups, whatever the number of rules
    (nested by type and department rather than one tuple-keyed dictionary: no
    key to build and hash, and small tables). The memo is part of this
    matcher (a new rule set is a new matcher), so it never serves candidates
    of an older rule set. ``memo_limit=0`` turns it off (the benchmark
    measures that path too).
    """

    def __init__(self, rules: RuleSet | Iterable[Rule], memo_limit: int = MEMO_LIMIT) -> None:
        rule_list = rules.rules if isinstance(rules, RuleSet) else tuple(rules)
        self.version = rules.version if isinstance(rules, RuleSet) else "local"
        # Sorted (stably) so results come in rule id order however the rules were given.
        self.compiled = tuple(sorted(
            (CompiledRule.compile(r) for r in rule_list if r.enabled), key=lambda c: c.rule.id
        ))
        self._index = RuleIndex([(c.index_keys, c) for c in self.compiled])
        # type -> department -> KLE -> candidates; None, None for an event without a case.
        self._memo: dict[str, dict[str | None, dict[str | None, tuple[CompiledRule, ...]]]] = {}
        self._memo_size = 0
        self._memo_limit = memo_limit

    def candidates(self, event: EngineEvent) -> tuple[CompiledRule, ...]:
        """The rules whose type, department and KLE conditions the event meets, in rule order."""
        case = event.data.case
        department, kle = (case.department, case.kle) if case is not None else (None, None)
        by_department = self._memo.get(event.type)
        if by_department is not None:
            by_kle = by_department.get(department)
            if by_kle is not None:
                found = by_kle.get(kle)
                if found is not None:
                    return found
        found = self._index.lookup(event.type, department, kle)
        if self._memo_limit > 0:
            if self._memo_size >= self._memo_limit:
                self._memo.clear()  # start afresh rather than grow without bound
                self._memo_size = 0
            self._memo.setdefault(event.type, {}).setdefault(department, {})[kle] = found
            self._memo_size += 1
        return found

    def of_type(self, event: EngineEvent) -> tuple[CompiledRule, ...]:
        """Every rule naming the event's type: for explaining which condition a rule missed."""
        return self._index.of_type(event.type)

    def matching(self, event: EngineEvent) -> list[CompiledRule]:
        """The rules the event triggers, in rule id order."""
        return [rule for rule in self.candidates(event)
                if not rule.checks_beyond_index or rule.failed_beyond_index(event) is None]

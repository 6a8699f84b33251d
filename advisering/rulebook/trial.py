"""`advisering rules test`: a small scenario through the real engine, explained event by event.

An operator writes a rule against a concrete case: a few JSON-lines events
(as the source systems send them) and optionally the overview the citizens
start with. For every event and every citizen it concerns, the trial shows
which rules fired, for whom and with which message, and for each rule of the
event's type that stayed silent, the condition that stopped it
(:func:`advisering.engine.explain.explain`). State lives in memory only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from advisering.engine.explain import Explanation, explain
from advisering.engine.limits import DEFAULT_LIMITS, StateLimits
from advisering.engine.matcher import Matcher
from advisering.engine.notification import Notification
from advisering.engine.overview import CitizenState, OpenCase, with_case
from advisering.events import (
    KLE_PATTERN,
    CaseEvent,
    Rejection,
    Sensitivity,
    Status,
    Vocabulary,
)
from advisering.privacy import is_cpr, is_pseudonym, pseudonymise
from advisering.rulebook.history import json_lines, prepared
from advisering.yamlfiles import FileProblem, YamlFileError, problems_from_validation


class OverviewCase(BaseModel):
    """One open case of a starting overview: a ``data.case`` plus where it lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    department: str
    unit: str
    kle: str
    status: Status = "oplyst"
    caseworker: str | None = None
    sensitivity: Sensitivity = "fortrolige"
    source: str = "overview"
    opened: dt.datetime | None = None

    @field_validator("kle")
    @classmethod
    def _kle(cls, value: str) -> str:
        if not KLE_PATTERN.match(value):
            raise ValueError("KLE must be dot-separated two-digit groups, like 34.15.00")
        return value

    def open_case(self) -> OpenCase:
        """The case as the engine keeps it (last seen at the epoch when ``opened`` is not given)."""
        seen = self.opened.timestamp() if self.opened is not None else 0.0
        return OpenCase(id=self.id, source=self.source, department=self.department,
                        unit=self.unit, caseworker=self.caseworker, kle=self.kle,
                        status=self.status, sensitivity=self.sensitivity, last_seen=seen)


def load_overview(path: Path, key: bytes, vocabulary: Vocabulary) -> dict[str, CitizenState]:
    """A JSON mapping of citizen (pseudonym or CPR number) to their open cases.

    A CPR number is pseudonymised with ``key``, exactly as the scenario's CPR
    parties are, so both name the same citizen. Problems never show a CPR
    number: such a citizen is named by position (``<citizen 2>``).
    """
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise YamlFileError([FileProblem(path, "", f"not a readable JSON file: {exc}")]) from exc
    if not isinstance(raw, dict):
        raise YamlFileError([FileProblem(path, "", "must map each citizen to a list of cases")])
    problems: list[FileProblem] = []
    states: dict[str, CitizenState] = {}
    for position, (who, cases) in enumerate(raw.items(), start=1):
        label = who if is_pseudonym(who) else f"<citizen {position}>"
        if is_pseudonym(who):
            citizen = who
        elif is_cpr(who):
            citizen = pseudonymise(who, key)
        else:
            problems.append(FileProblem(path, label, "not a pseudonym (ps1-...) or CPR number"))
            continue
        if not isinstance(cases, list):
            problems.append(FileProblem(path, label, "must be a list of open cases"))
            continue
        state = states.get(citizen, CitizenState())
        for index, case_raw in enumerate(cases):
            where = f"{label}[{index}]"
            try:
                case = OverviewCase.model_validate(case_raw)
            except ValidationError as exc:
                problems.extend(FileProblem(path, f"{where}.{p.path}", p.message, hint=p.hint)
                                for p in problems_from_validation(path, exc, model=OverviewCase))
                continue
            if case.department not in vocabulary.departments:
                problems.append(FileProblem(path, f"{where}.department",
                                            f"unknown department {case.department!r}"))
                continue
            state = with_case(state, case.open_case())
        states[citizen] = state
    if problems:
        raise YamlFileError(problems)
    return states


@dataclass
class TrialStep:
    """One scenario line: the event and, per citizen it concerns, the explanation."""

    line: int
    event: CaseEvent | None = None
    rejection: Rejection | None = None
    citizens: list[tuple[str, Explanation]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """The step as JSON: the rejection, or per citizen what fired and what almost did."""
        if self.event is None:
            assert self.rejection is not None
            return {"line": self.line, "rejected": {
                "reason": self.rejection.reason.value, "path": self.rejection.path,
                "message": self.rejection.message}}
        event = self.event
        return {
            "line": self.line,
            "event": {"id": event.id, "source": event.source, "type": event.type,
                      "time": event.time.isoformat(),
                      "case": event.data.case.id if event.data.case else None},
            "citizens": [{
                "citizen": citizen,
                "repeated": explanation.repeated,
                "fired": [n.to_json() for v in explanation.fired for n in v.notifications],
                "almost": [v.to_json() for v in explanation.almost],
            } for citizen, explanation in self.citizens],
        }


@dataclass(frozen=True, slots=True)
class TrialSummary:
    """The totals of a trial an operator checks first."""

    events: int
    rejected: int
    notifications: int
    rules_fired: tuple[str, ...]  # sorted, each once
    almost: int

    def to_json(self) -> dict[str, object]:
        """The summary as the report's JSON holds it."""
        return {"events": self.events, "rejected": self.rejected,
                "notifications": self.notifications, "rules_fired": list(self.rules_fired),
                "almost": self.almost}


@dataclass
class TrialReport:
    """Every step of a scenario, with the totals an operator checks first."""

    steps: list[TrialStep]

    @property
    def rejected(self) -> int:
        """How many scenario lines were refused."""
        return sum(1 for step in self.steps if step.rejection is not None)

    def explanations(self) -> Iterable[Explanation]:
        """Every citizen's explanation, step by step."""
        return (explanation for step in self.steps for _, explanation in step.citizens)

    def notifications(self) -> list[Notification]:
        """Every notification the scenario produced, in order."""
        return [n for e in self.explanations() for n in e.outcome.notifications]

    def almost(self) -> int:
        """How often a rule of an event's type did not fire, over the whole scenario."""
        return sum(len(e.almost) for e in self.explanations())

    def summary(self) -> TrialSummary:
        """The totals an operator checks first."""
        notifications = self.notifications()
        return TrialSummary(
            events=len(self.steps),
            rejected=self.rejected,
            notifications=len(notifications),
            rules_fired=tuple(sorted({n.rule for n in notifications})),
            almost=self.almost(),
        )

    def to_json(self) -> dict[str, object]:
        """The report as JSON: every step, then the summary."""
        return {"steps": [step.to_json() for step in self.steps],
                "summary": self.summary().to_json()}


def run_trial(
    scenario: Path, matcher: Matcher, vocabulary: Vocabulary, key: bytes,
    overview: dict[str, CitizenState] | None = None, limits: StateLimits = DEFAULT_LIMITS,
) -> TrialReport:
    """Run every line of ``scenario`` through the engine, one in-memory state per citizen.

    ``limits`` are the worker's per-citizen limits, so a trial refuses what the worker would.
    """
    states = dict(overview or {})
    steps = []
    for line, result in prepared(json_lines(scenario, vocabulary.max_depth), key, vocabulary):
        if isinstance(result, Rejection):
            steps.append(TrialStep(line, rejection=result))
            continue
        step = TrialStep(line, event=result)
        created = result.time.isoformat()
        for citizen in dict.fromkeys(party.citizen for party in result.data.parties):
            explanation = explain(states.get(citizen), result, citizen, matcher, created, limits)
            states[citizen] = explanation.outcome.state
            step.citizens.append((citizen, explanation))
        steps.append(step)
    return TrialReport(steps)

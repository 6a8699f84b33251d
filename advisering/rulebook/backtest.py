"""`advisering rules backtest`: history through a candidate rule set, counted per rule.

A noisy rule buries caseworkers and a silent one misses the child at risk; the
backtest shows which before the rule goes live. It replays events with the
real engine (:func:`advisering.engine.evaluate.process`), rebuilding each
citizen's overview as it goes, and sends nothing. With a baseline (the
deployed rules) both sets run in the same pass, each with its own state, since
throttle windows and sent ids depend on the rules, so the difference per rule
is exact.

Memory is the overview: events are streamed one at a time; per rule only the
counts and a counter per recipient (caseworkers and units, a bounded set) are
kept.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from advisering.engine.evaluate import process
from advisering.engine.limits import DEFAULT_LIMITS, StateLimits
from advisering.engine.matcher import Matcher
from advisering.engine.overview import CitizenState
from advisering.events import CaseEvent, Rejection

WEEK_SECONDS = 7 * 86400
METRICS = ("notifications", "recipients", "busiest_per_week", "throttled", "suppressed",
           "matched")


@dataclass(frozen=True, slots=True)
class RuleFigures:
    """One rule's figures in a report (fields in the order of the report's JSON)."""

    notifications: int = 0
    recipients: int = 0
    busiest_recipient: str | None = None
    busiest_per_week: float = 0.0
    throttled: int = 0
    suppressed: int = 0
    matched: int = 0

    def to_json(self) -> dict[str, object]:
        """The figures as the report's JSON shows them."""
        return asdict(self)


@dataclass
class RuleStats:
    """What one rule did during the replay."""

    matched: int = 0
    notifications: int = 0
    throttled: int = 0
    suppressed: int = 0
    per_recipient: Counter[str] = field(default_factory=Counter)

    def figures(self, weeks: float) -> RuleFigures:
        """The rule's figures; ``busiest_per_week`` spreads over ``weeks`` of replayed time."""
        # The most notified recipient; on a tie the first by id, so reports are repeatable.
        busiest = min(self.per_recipient.items(), key=lambda kv: (-kv[1], kv[0]), default=None)
        return RuleFigures(
            notifications=self.notifications,
            recipients=len(self.per_recipient),
            busiest_recipient=busiest[0] if busiest else None,
            busiest_per_week=round(busiest[1] / weeks, 2) if busiest else 0.0,
            throttled=self.throttled,
            suppressed=self.suppressed,
            matched=self.matched,
        )


class Replay:
    """One rule set replayed: its own overview per citizen and its counts per rule."""

    def __init__(self, matcher: Matcher, limits: StateLimits = DEFAULT_LIMITS) -> None:
        self.matcher = matcher
        self.limits = limits
        self.states: dict[str, CitizenState] = {}
        self.stats = {c.rule.id: RuleStats() for c in matcher.compiled}
        self.duplicates = 0
        self.stale = 0

    def feed(self, event: CaseEvent, citizen: str, created: str) -> None:
        """Process one citizen's copy of an event and count what each rule did."""
        outcome = process(self.states.get(citizen), event, citizen, self.matcher, created,
                          self.limits)
        if outcome.state.is_empty():
            self.states.pop(citizen, None)
        else:
            self.states[citizen] = outcome.state
        stats = self.stats
        for rule_id in outcome.matched:
            stats[rule_id].matched += 1
        for rule_id in outcome.throttled:
            stats[rule_id].throttled += 1
        for rule_id in outcome.suppressed:
            stats[rule_id].suppressed += 1
        for notification in outcome.notifications:
            rule = stats[notification.rule]
            rule.notifications += 1
            rule.per_recipient[notification.recipient.key] += 1
        self.duplicates += outcome.duplicates
        self.stale += outcome.stale

    def rule_figures(self, weeks: float) -> dict[str, RuleFigures]:
        """Per rule id, in id order, its figures over ``weeks``."""
        return {rule_id: stats.figures(weeks) for rule_id, stats in sorted(self.stats.items())}

    def overview_json(self) -> dict[str, int]:
        """How much state the replay left, and the events it ignored as duplicate or stale."""
        return {"citizens": len(self.states),
                "open_cases": sum(len(s.cases) for s in self.states.values()),
                "duplicates": self.duplicates, "stale": self.stale}


@dataclass(frozen=True)
class Progress:
    """How far a long replay has come (shown on stderr every so many events)."""

    events: int
    seconds: float
    citizens: int

    @property
    def rate(self) -> float:
        """Events per second so far."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BacktestReport:
    """The result: events read, and per rule the candidate's (and baseline's) figures."""

    events: int
    accepted: int
    rejected: Counter[str]
    first: dt.datetime | None
    last: dt.datetime | None
    seconds: float
    candidate: dict[str, RuleFigures]
    candidate_overview: dict[str, int]
    baseline: dict[str, RuleFigures] | None = None
    source: dict[str, str | None] = field(default_factory=dict)

    @property
    def weeks(self) -> float:
        """The replayed period in weeks, from the first to the last event's time."""
        return weeks_between(self.first, self.last)

    def difference(self) -> dict[str, dict[str, str | float]]:
        """Per rule id in either set: its status, and candidate minus baseline per figure."""
        if self.baseline is None:
            return {}
        out: dict[str, dict[str, str | float]] = {}
        for rule_id in sorted(set(self.candidate) | set(self.baseline)):
            new, old = self.candidate.get(rule_id), self.baseline.get(rule_id)
            status = ("new" if old is None else "removed" if new is None
                      else "same" if all(_figure(new, m) == _figure(old, m) for m in METRICS)
                      else "changed")
            diff: dict[str, str | float] = {"status": status}
            for metric in METRICS:
                delta = _figure(new, metric) - _figure(old, metric)
                diff[metric] = round(delta, 2) if isinstance(delta, float) else delta
            out[rule_id] = diff
        return out

    def to_json(self) -> dict[str, object]:
        """The whole report as JSON, with the baseline and the difference when there is one."""
        return {
            "source": self.source,
            "events": {"read": self.events, "accepted": self.accepted,
                       "rejected": dict(sorted(self.rejected.items()))},
            "period": {"first": self.first.isoformat() if self.first else None,
                       "last": self.last.isoformat() if self.last else None,
                       "weeks": round(self.weeks, 3)},
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
            "overview": self.candidate_overview,
            "rules": _figures_json(self.candidate),
            "baseline": None if self.baseline is None else _figures_json(self.baseline),
            "difference": self.difference() if self.baseline is not None else None,
        }


def _figure(figures: RuleFigures | None, metric: str) -> float:
    """One numeric figure by its name in METRICS; 0 for a rule the set does not have."""
    value: float = 0 if figures is None else getattr(figures, metric)
    return value


def _figures_json(figures: dict[str, RuleFigures]) -> dict[str, dict[str, object]]:
    return {rule_id: f.to_json() for rule_id, f in figures.items()}


def weeks_between(first: dt.datetime | None, last: dt.datetime | None) -> float:
    """The replayed period in weeks, at least one: per-week rates of a short test stay counts."""
    if first is None or last is None:
        return 1.0
    return max((last - first).total_seconds(), WEEK_SECONDS) / WEEK_SECONDS


def backtest(
    events: Iterable[CaseEvent | Rejection], candidate: Matcher, baseline: Matcher | None = None,
    *, progress: Callable[[Progress], None] | None = None, every: int = 100_000,
    source: dict[str, str | None] | None = None, limits: StateLimits = DEFAULT_LIMITS,
) -> BacktestReport:
    """Replay ``events`` through ``candidate`` (and ``baseline``); invalid events are counted.

    ``limits`` are the worker's per-citizen limits, so the replay refuses what the worker would.
    """
    replays = [Replay(candidate, limits)] + (
        [Replay(baseline, limits)] if baseline is not None else [])
    rejected: Counter[str] = Counter()
    count = accepted = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    began = time.perf_counter()
    for event in events:
        count += 1
        if progress is not None and count % every == 0:
            progress(Progress(count, time.perf_counter() - began, len(replays[0].states)))
        if isinstance(event, Rejection):
            rejected[event.reason.value] += 1
            continue
        accepted += 1
        at = event.time
        if first is None or at < first:
            first = at
        if last is None or at > last:
            last = at
        created = at.isoformat()
        for citizen in dict.fromkeys(party.citizen for party in event.data.parties):
            for replay in replays:
                replay.feed(event, citizen, created)
    seconds = time.perf_counter() - began
    weeks = weeks_between(first, last)
    return BacktestReport(
        events=count, accepted=accepted, rejected=rejected, first=first, last=last,
        seconds=seconds, candidate=replays[0].rule_figures(weeks),
        candidate_overview=replays[0].overview_json(),
        baseline=replays[1].rule_figures(weeks) if baseline is not None else None,
        source=source or {},
    )

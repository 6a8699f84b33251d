"""Text an operator reads: the trial event by event, the backtest as a table.

Returned as lines, not printed, so the CLI decides where output goes and the
tests compare text. Citizens are shown by a shortened pseudonym only.
"""

from __future__ import annotations

from advisering.engine.explain import Explanation
from advisering.engine.notification import Notification
from advisering.rulebook.backtest import BacktestReport
from advisering.rulebook.trial import TrialReport, TrialStep


def short(citizen: str) -> str:
    """Enough of a pseudonym to tell citizens apart in a report."""
    return citizen[:12] + "…"


def recipient_text(notification: Notification) -> str:
    """Who a notification goes to, and through which case."""
    recipient = notification.recipient
    who = (f"caseworker {recipient.caseworker} ({recipient.unit}, "
           f"{recipient.department})" if recipient.caseworker
           else f"unit {recipient.unit} ({recipient.department}, no caseworker on the case)")
    return f"{who} via case {notification.related_case.id}"


def trial_lines(report: TrialReport) -> list[str]:
    """The trial event by event (verdicts, near misses), then a summary line."""
    lines: list[str] = []
    for step in report.steps:
        lines.extend(_step_lines(step))
    summary = report.summary()
    fired = ", ".join(summary.rules_fired) or "none"
    lines.append(
        f"{summary.events} event(s), {summary.rejected} rejected; "
        f"{summary.notifications} notification(s) (rules: {fired}); "
        f"{summary.almost} near miss(es)."
    )
    return lines


def _step_lines(step: TrialStep) -> list[str]:
    if step.event is None:
        assert step.rejection is not None
        where = f" at {step.rejection.path}" if step.rejection.path else ""
        return [f"line {step.line}: rejected: {step.rejection.reason.value}{where}: "
                f"{step.rejection.message}"]
    event = step.event
    case = event.data.case
    about = f", case {case.id} ({case.department}, KLE {case.kle}, {case.status})" if case else ""
    lines = [f"line {step.line}: {event.type} from {event.source} at "
             f"{event.time:%d.%m.%Y %H:%M}{about}"]
    for citizen, explanation in step.citizens:
        lines.append(f"  citizen {short(citizen)}")
        lines.extend(_explanation_lines(explanation))
    return lines


def _explanation_lines(explanation: Explanation) -> list[str]:
    if explanation.repeated:
        return ["    already processed (same source and id): nothing evaluated again"]
    if not explanation.verdicts:
        return ["    no rule is about this event type"]
    lines = []
    for verdict in explanation.verdicts:
        if verdict.verdict == "fired":
            for notification in verdict.notifications:
                lines.append(f"    FIRED   {verdict.rule} -> {recipient_text(notification)}")
                lines.append(f"            \"{notification.message}\"")
        else:
            condition = f" [{verdict.condition}]" if verdict.condition else ""
            lines.append(f"    ALMOST  {verdict.rule}: {verdict.verdict}{condition}: "
                         f"{verdict.reason}")
    return lines


COLUMNS = (("notifications", "notifications"), ("recipients", "recipients"),
           ("busiest_per_week", "busiest/week"), ("throttled", "throttled"),
           ("suppressed", "suppressed"))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return f"{value:,}".replace(",", " ") if isinstance(value, int) else str(value)


def _delta(value: object) -> str:
    if not isinstance(value, int | float) or not value:
        return ""
    return ("+" if value > 0 else "") + _cell(value)


def backtest_lines(
    report: BacktestReport, candidate_dir: str, baseline_dir: str | None
) -> list[str]:
    """The backtest as a table of figures per rule, with the change against a baseline."""
    rejected = ", ".join(f"{n} {reason}" for reason, n in sorted(report.rejected.items()))
    first = report.first.isoformat() if report.first else None
    last = report.last.isoformat() if report.last else None
    per_second = round(report.events / report.seconds) if report.seconds else 0
    overview = report.candidate_overview
    lines = [
        f"Backtest of {candidate_dir}" + (f" against {baseline_dir}" if baseline_dir else ""),
        f"  events: {report.events} read, {report.accepted} replayed, "
        f"{sum(report.rejected.values())} rejected" + (f" ({rejected})" if rejected else ""),
        f"  period: {first} to {last} ({round(report.weeks, 3):.1f} weeks)",
        f"  {round(report.seconds, 3):.1f}s, {per_second} events/s; overview at the "
        f"end: {overview['citizens']} citizens, {overview['open_cases']} open cases",
        "",
    ]
    diff = report.difference()
    ids = sorted(set(report.candidate) | set(report.baseline or {}))
    width = max([len("rule"), *(len(i) for i in ids)])
    compare = report.baseline is not None
    header = f"{'rule':<{width}}"
    for _, title in COLUMNS:
        header += f"  {title:>{max(len(title), 6)}}" + (f" {'change':>6}" if compare else "")
    if compare:
        header += "  status"
    lines.append(header)
    for rule_id in ids:
        figures = report.candidate.get(rule_id)
        row = f"{rule_id:<{width}}"
        for key, title in COLUMNS:
            cell = _cell(getattr(figures, key)) if figures else "-"
            row += f"  {cell:>{max(len(title), 6)}}"
            if compare:
                row += f" {_delta(diff[rule_id][key]):>6}"
        if compare:
            row += f"  {diff[rule_id]['status']}"
        lines.append(row)
    lines.append("")
    lines.append("busiest/week: notifications per week of the rule's busiest recipient over the "
                 "period (at least one week).")
    return lines

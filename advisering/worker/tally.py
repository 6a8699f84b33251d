"""The worker's side of the pure steps: the clock, the metrics and throttled log lines.

:mod:`advisering.worker.steps` returns what it did in ``Outbox.counts``; the
agents call :func:`record` with it, and pass :func:`now_iso` in as the time.
The steps stay pure (same input, same output), and every global the worker
touches per event is touched here.
"""

from __future__ import annotations

import datetime as dt
import time

from advisering import metrics
from advisering.log import get_logger
from advisering.worker.steps import Counts, StateLimitRefusal

log = get_logger(__name__)

# The label children every event touches, looked up once.
_ACCEPTED = metrics.EVENTS_PROCESSED.labels("accepted")
_DEAD_LETTERED = metrics.EVENTS_PROCESSED.labels("dead_lettered")

# A flood for one citizen is thousands of refusals: one log line per citizen and limit
# per interval, with the number refused since (every refusal is a dead letter and counted).
LIMIT_LOG_SECONDS = 60.0
_LIMIT_LOG_KEYS = 1024
_limit_logged: dict[tuple[str, str], tuple[float, int]] = {}


def now_iso() -> str:
    """The time the steps are given: notifications' ``created``, dead letters' ``received``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def record(counts: Counts, seconds: float | None = None) -> None:
    """Count what one step did; ``seconds`` is the engine's time, when it ran."""
    if counts.accepted:
        _ACCEPTED.inc(counts.accepted)
    if counts.dead_lettered:
        _DEAD_LETTERED.inc(counts.dead_lettered)
    for reason in counts.dead_letters:
        metrics.DEAD_LETTERS.labels(reason).inc()
    for refusal in counts.state_limits:
        _state_limit(refusal)
    if counts.trimmed:
        metrics.CITIZEN_STATE_TRIMMED.inc(counts.trimmed)
    for rule_id in counts.emitted:
        metrics.NOTIFICATIONS_EMITTED.labels(rule_id).inc()
    for rule_id in counts.matched:
        metrics.RULE_MATCHES.labels(rule_id).inc()
    for rule_id in counts.throttled:
        metrics.NOTIFICATIONS_THROTTLED.labels(rule_id).inc()
    for rule_id in counts.suppressed:
        metrics.NOTIFICATIONS_SUPPRESSED.labels(rule_id).inc()
    if counts.duplicates:
        metrics.REPEATS_SKIPPED.inc(counts.duplicates)
    if counts.stale:
        metrics.STALE_EVENTS.inc(counts.stale)
    if counts.processed and seconds is not None:
        metrics.PROCESSING_SECONDS.observe(seconds)


def _state_limit(refusal: StateLimitRefusal) -> None:
    """Count a refusal per limit; log it at most once per citizen and limit per interval."""
    metrics.CITIZEN_STATE_LIMITS.labels(refusal.limit).inc()
    refused = _refusals_to_log(refusal.citizen, refusal.limit)
    if refused:
        log.warning("citizen_state_limit", limit=refusal.limit, value=refusal.value,
                    citizen=refusal.citizen, refused=refused, topic=refusal.topic,
                    partition=refusal.partition, offset=refusal.offset)


def _refusals_to_log(citizen: str, limit: str) -> int:
    """How many refusals a log line now covers (0: not now, a line was written lately)."""
    now = time.monotonic()
    last, unlogged = _limit_logged.get((citizen, limit), (float("-inf"), 0))
    if now - last < LIMIT_LOG_SECONDS:
        _limit_logged[(citizen, limit)] = (last, unlogged + 1)
        return 0
    if len(_limit_logged) >= _LIMIT_LOG_KEYS:
        _limit_logged.clear()
    _limit_logged[(citizen, limit)] = (now, 0)
    return unlogged + 1

"""Hot reload: each worker follows ``advisering.rules`` and swaps its matcher.

Every worker reads the whole (one-partition, compacted) topic itself, outside
any consumer group, so all workers see every rule set. A set is applied only
when its manifest arrived and every rule it names is present, unchanged and
valid; the swap replaces one reference, and the correlate agent reads that
reference once per event, so each event is evaluated entirely by the old or
entirely by the new set: nothing is lost or repeated across a switch. A set
not signed by one of the worker's verify keys, or older than the set it
applies, is refused like an invalid one: logged as ``ruleset_rejected``,
counted by reason, and the current set stays.
"""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from advisering import metrics
from advisering.engine.matcher import Matcher
from advisering.engine.rules import RuleSet
from advisering.events import Vocabulary
from advisering.kafka.clients import consumer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.polling import PollThread
from advisering.kafka.topics import RULES
from advisering.log import get_logger
from advisering.rulebook.deploy import (
    DEFAULT_MAX_RECORD_BYTES,
    DeployedState,
    RulesetRejected,
    is_older,
    read_deployed,
)
from advisering.rulebook.signing import VerifyKeys
from advisering.yamlfiles import YamlFileError

log = get_logger(__name__)


class MatcherHolder:
    """The worker's current matcher; replaced as a whole, never changed in place."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.show_in_metrics()

    def swap(self, matcher: Matcher) -> None:
        """Make ``matcher`` the current one (the next event is evaluated by it)."""
        previous = self.matcher.version
        self.matcher = matcher
        self.show_in_metrics()
        log.info("ruleset_applied", version=matcher.version, previous=previous,
                 rules=len(matcher.compiled))

    def show_in_metrics(self) -> None:
        """Export the applied set's rule count and version (``/metrics``)."""
        metrics.RULESET_RULES.set(len(self.matcher.compiled))
        metrics.RULESET_VERSION.info({"version": self.matcher.version})


def judge(state: DeployedState, vocabulary: Vocabulary, keys: VerifyKeys) -> RuleSet:
    """The manifest's set, verified and valid; RulesetRejected(reason) otherwise."""
    try:
        ruleset = state.verified_set(vocabulary, keys)
    except RulesetRejected:
        raise
    except YamlFileError as exc:
        raise RulesetRejected("invalid", f"{len(exc.problems)} problem(s)") from None
    except Exception as exc:  # noqa: BLE001 - hostile documents must not stop a worker
        raise RulesetRejected("error", type(exc).__name__) from None
    if ruleset is None:
        raise RulesetRejected("incomplete")
    return ruleset


def reject(exc: RulesetRejected, version: str, where: str) -> None:
    """Count and log a refused set (its version and why; never its content)."""
    metrics.RULESETS_REJECTED.labels(exc.reason).inc()
    log.error("ruleset_rejected", version=version[:100], reason=exc.reason,
              detail=exc.detail[:160], where=where)


def initial_ruleset(kafka: KafkaConnection, vocabulary: Vocabulary, local: RuleSet,
                    keys: VerifyKeys, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                    ) -> tuple[RuleSet, DeployedState, int]:
    """The deployed set if the topic has a valid, signed one, else the local rules directory.

    Invalid records were skipped by :meth:`DeployedState.apply`; a set that
    is unsigned, wrongly signed, incomplete or invalid (or fails in any other
    way) is counted and logged as rejected, and the local rules are used.
    """
    state = read_deployed(kafka, max_record_bytes=max_record_bytes)
    end = state.end
    if state.manifest is None:
        log.info("ruleset_local", rules=len(local.rules), deployed=False)
        return local, state, end
    try:
        deployed = judge(state, vocabulary, keys)
    except RulesetRejected as exc:
        reject(exc, state.manifest.version, "start")
        log.info("ruleset_local", rules=len(local.rules), deployed=True)
        return local, state, end
    return deployed, state, end


def watch_consumer_config(kafka: KafkaConnection) -> dict[str, Any]:
    """The watcher's consumer: it assigns the rules partition itself and never commits.

    Each worker follows the whole rules topic from the offset its start-up
    read reached, so the group only names the client in the broker's view.
    """
    return consumer_config(kafka, group="advisering-rules-watch",
                           client_id="advisering-rules-watch")


class RulesWatcher:
    """A daemon thread following the rules topic from ``start_offset``.

    Nothing one record holds can end it: every record is handled inside a
    catch-all (an invalid record is skipped by :class:`DeployedState`, an
    unexpected error is logged and counted as ``rules_watch_error``). Should
    the thread end anyway, :attr:`alive` turns False, the gauge
    ``advisering_rules_watcher_up`` drops to 0 and ``/readyz`` answers 503.
    """

    def __init__(self, kafka: KafkaConnection, vocabulary: Vocabulary, holder: MatcherHolder,
                 state: DeployedState, start_offset: int, keys: VerifyKeys,
                 consumer: Consumer | None = None) -> None:
        """Follow from ``start_offset`` with ``consumer`` (tests feed records through it)."""
        self.vocabulary = vocabulary
        self.keys = keys
        self.holder = holder
        self.state = state
        self._consumer = consumer or Consumer(watch_consumer_config(kafka))
        self._consumer.assign([TopicPartition(RULES, 0, start_offset)])
        self._closed = threading.Lock()
        self._poller = PollThread("rules-watch", self.step,
                                  on_end=lambda: metrics.RULES_WATCHER_UP.set(0))

    @property
    def alive(self) -> bool:
        """True while the thread follows the topic (False before start and after it ended)."""
        return self._poller.alive

    def start(self) -> None:
        """Start following the topic in the daemon thread."""
        metrics.RULES_WATCHER_UP.set(1)
        self._poller.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following; safe to call twice and from any thread."""
        self._poller.stop(timeout)
        if not self._poller.alive and self._closed.acquire(blocking=False):
            self._consumer.close()

    def step(self) -> None:
        """Poll once and take what came; never raises an Exception."""
        offset = -1
        try:
            message = self._consumer.poll(0.5)
            if message is None or message.error():
                return
            offset = int(message.offset() or 0)
            if self.state.apply(message.key(), message.value(), offset):
                self.consider()
        except Exception as exc:  # noqa: BLE001 - no record may end the watcher (see the class)
            metrics.RULESETS_REJECTED.labels("error").inc()
            log.error("rules_watch_error", offset=offset, error=type(exc).__name__)

    def consider(self) -> None:
        """Apply the manifest's set if it is signed, current, complete and valid; else keep."""
        manifest = self.state.manifest
        if manifest is None or manifest.version == self.holder.matcher.version:
            return
        try:
            ruleset = judge(self.state, self.vocabulary, self.keys)
            if is_older(manifest.version, self.holder.matcher.version):
                # A validly signed but older set, e.g. replayed onto the topic.
                raise RulesetRejected("stale", f"older than {self.holder.matcher.version}")
        except RulesetRejected as exc:
            reject(exc, manifest.version, "watch")
            return
        self.holder.swap(Matcher(ruleset))

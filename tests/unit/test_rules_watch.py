"""The rules watcher thread survives whatever a record or a bug throws, and says when it ended."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import REGISTRY

from advisering.engine.matcher import Matcher
from advisering.engine.rules import load_rules
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import load_vocabulary
from advisering.rulebook.deploy import DeployedState
from advisering.rulebook.watch import MatcherHolder, RulesWatcher

ROOT = Path(__file__).resolve().parents[2]


class Message:
    def __init__(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        self._key, self._value, self._offset = key, value, offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


class FeedConsumer:
    """Stands in for the confluent consumer: hands out the given records, then nothing."""

    def __init__(self, records: list[Any]) -> None:
        self.records = list(records)
        self.closed = False

    def poll(self, timeout: float) -> Any:
        if not self.records:
            time.sleep(0.01)
            return None
        record = self.records.pop(0)
        if isinstance(record, BaseException):
            raise record
        return record

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def close(self) -> None:
        self.closed = True


def watcher_with(records: list[Any]) -> tuple[RulesWatcher, FeedConsumer]:
    vocabulary = load_vocabulary(ROOT / "topics")
    holder = MatcherHolder(Matcher(load_rules(ROOT / "rules", vocabulary)))
    feed = FeedConsumer(records)
    watcher = RulesWatcher(KafkaConnection.plaintext("127.0.0.1:1"), vocabulary, holder,
                           DeployedState(), 0, consumer=feed)  # type: ignore[arg-type]
    return watcher, feed


def watcher_up() -> float | None:
    return REGISTRY.get_sample_value("advisering_rules_watcher_up")


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)


def test_garbage_and_errors_do_not_end_the_thread() -> None:
    """Bad records and an unexpected exception from the consumer leave the thread running."""
    watcher, feed = watcher_with([
        Message(b"my-rule", b"not json", 0),
        Message(b"\xff", b"{}", 1),
        Message(b"__ruleset__", orjson.dumps({"version": "x"}), 2),
        RuntimeError("unexpected"),
        Message(b"__ruleset__", orjson.dumps({"version": "x", "rules": {"gone": "0" * 64}}), 3),
    ])
    watcher.start()
    try:
        wait_until(lambda: not feed.records)
        time.sleep(0.1)
        assert watcher.alive
        assert watcher_up() == 1.0
        assert watcher.holder.matcher.version == "local"
    finally:
        watcher.stop()
    assert not watcher.alive
    assert feed.closed


def test_a_thread_that_ends_anyway_shows_in_alive_and_the_gauge() -> None:
    """Should the thread end (here: a BaseException), alive is False and the gauge says 0."""
    watcher, _ = watcher_with([SystemExit(3)])
    watcher.start()
    wait_until(lambda: not watcher.alive)
    assert not watcher.alive
    assert watcher_up() == 0.0
    watcher.stop()

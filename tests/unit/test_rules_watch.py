"""The rules watcher survives whatever a record or a bug throws, and applies only signed sets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from advisering.engine.matcher import Matcher
from advisering.engine.rules import load_rules
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import load_vocabulary
from advisering.rulebook.deploy import (
    MANIFEST_KEY,
    DeployedState,
    rule_hash,
    rule_json,
    signed_manifest,
)
from advisering.rulebook.signing import Signer
from advisering.rulebook.watch import MatcherHolder, RulesWatcher

ROOT = Path(__file__).resolve().parents[2]
SIGNER = Signer(Ed25519PrivateKey.generate())


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
                           DeployedState(), 0, SIGNER.verify_keys(),
                           consumer=feed)  # type: ignore[arg-type]
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


def set_messages(version: str, signer: Signer | None, change_rule: bool = False,
                 offset: int = 0) -> list[Message]:
    """The shipped rules as `rules deploy` writes them, signed by ``signer`` (None: unsigned)."""
    ruleset = load_rules(ROOT / "rules", load_vocabulary(ROOT / "topics"))
    documents = {rule.id: rule_json(rule) for rule in ruleset.rules}
    hashes = {k: rule_hash(v) for k, v in documents.items()}
    if change_rule:  # after hashing: the record differs from what was signed
        first = sorted(documents)[0]
        documents[first] = dict(documents[first], message="Ændret uden nøglen.")
    messages = [Message(k.encode(), orjson.dumps({"version": version, "rule": v}), offset + n)
                for n, (k, v) in enumerate(sorted(documents.items()))]
    manifest: dict[str, object] = {"version": version, "deployed": "2026-12-04T09:00:00+00:00",
                                   "rules": hashes}
    if signer is not None:
        manifest = signed_manifest(version, "2026-12-04T09:00:00+00:00", hashes, signer)
    messages.append(Message(MANIFEST_KEY.encode(), orjson.dumps(manifest),
                            offset + len(messages)))
    return messages


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("advisering_rulesets_rejected_total",
                                     {"reason": reason}) or 0.0


def run_feed(records: list[Any]) -> tuple[RulesWatcher, list[dict[str, Any]]]:
    """Feed ``records`` through a started watcher; its logs, and the watcher (stopped)."""
    watcher, feed = watcher_with(records)
    with structlog.testing.capture_logs() as logs:
        watcher.start()
        try:
            wait_until(lambda: not feed.records)
            time.sleep(0.2)
            assert watcher.alive
        finally:
            watcher.stop()
    return watcher, logs


def test_unsigned_wrongly_signed_and_tampered_sets_are_refused_and_counted() -> None:
    """Each forged set is rejected ("signature"), logged with its version, and the rules stay."""
    other = Signer(Ed25519PrivateKey.generate())
    before = rejected("signature")
    watcher, logs = run_feed([
        *set_messages("20261204T090000Z-00000001", None),
        *set_messages("20261204T090000Z-00000002", other, offset=100),
        *set_messages("20261204T090000Z-00000003", SIGNER, change_rule=True, offset=200),
    ])
    assert watcher.holder.matcher.version == "local"
    assert rejected("signature") == before + 3
    refusals = [(e["version"], e["reason"], e["detail"]) for e in logs
                if e["event"] == "ruleset_rejected"]
    assert refusals == [
        ("20261204T090000Z-00000001", "signature", "unsigned"),
        ("20261204T090000Z-00000002", "signature", "unknown key id"),
        ("20261204T090000Z-00000003", "signature", "1 rule(s) differ from the signed hash"),
    ]
    assert "Ændret" not in str(logs)


def test_a_signed_set_is_applied_and_an_older_signed_one_then_refused_as_stale() -> None:
    """A validly signed set is applied; replaying an older signed set is refused ("stale")."""
    before = rejected("stale")
    watcher, logs = run_feed([
        *set_messages("20261204T090000Z-0000000a", SIGNER),
        *set_messages("20261203T090000Z-0000000b", SIGNER, offset=100),
    ])
    assert watcher.holder.matcher.version == "20261204T090000Z-0000000a"
    assert rejected("stale") == before + 1
    assert [(e["event"], e.get("reason")) for e in logs
            if e["event"] in ("ruleset_applied", "ruleset_rejected")] == [
        ("ruleset_applied", None), ("ruleset_rejected", "stale")]

"""Rule sets on the compacted ``advisering.rules`` topic: deploy, read, verify.

A deployed set is one record per rule (key: rule id, value: the rule and the
set's version) followed by a manifest record (key ``__ruleset__``) naming the
version and the SHA-256 of every rule in it; a deleted rule gets a tombstone.
The topic has one partition, so a reader that sees the manifest has seen the
rules before it. Workers apply a set only when every rule the manifest names
is present with the right hash and the whole set validates, so a half-written
or invalid set is never applied anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from advisering.broker.topic_specs import RULES
from advisering.engine.rules import Rule, RuleSet, rules_from_documents
from advisering.events import Vocabulary

MANIFEST_KEY = "__ruleset__"


def rule_json(rule: Rule) -> dict[str, Any]:
    return rule.model_dump(mode="json", exclude_none=True)


def rule_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def set_version(rules: Iterable[Rule], at: dt.datetime) -> str:
    """A version that sorts by time and names the content: 20261129T140000Z-1a2b3c4d."""
    digest = hashlib.sha256(b"".join(
        orjson.dumps(rule_json(r), option=orjson.OPT_SORT_KEYS) for r in rules)).hexdigest()
    return f"{at:%Y%m%dT%H%M%SZ}-{digest[:8]}"


@dataclass
class DeployedState:
    """What the topic says: the latest record per rule id and the latest manifest."""

    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Take one record; True when it was a manifest (a set may now be complete)."""
        if key is None:
            return False
        name = key.decode()
        if name == MANIFEST_KEY:
            self.manifest = orjson.loads(value) if value else None
            return True
        if value is None:
            self.rules.pop(name, None)
        else:
            self.rules[name] = orjson.loads(value)["rule"]
        return False

    def complete_set(self, vocabulary: Vocabulary) -> RuleSet | None:
        """The manifest's rule set, when every rule is present, unchanged and valid."""
        if self.manifest is None:
            return None
        documents = []
        for rule_id, digest in sorted(self.manifest["rules"].items()):
            document = self.rules.get(rule_id)
            if document is None or rule_hash(document) != digest:
                return None
            documents.append((Path(f"{RULES}/{rule_id}"), document))
        return rules_from_documents(documents, vocabulary, version=self.manifest["version"])


def read_deployed(bootstrap: str, timeout: float = 30.0) -> DeployedState:
    """Read ``advisering.rules`` from the beginning to its current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "advisering-rules-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    state = DeployedState()
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(RULES, 0), timeout=timeout)
        if high <= low:
            return state
        consumer.assign([TopicPartition(RULES, 0, low)])
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=timeout)
        position = low
        while position < high and dt.datetime.now(dt.UTC) < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            state.apply(message.key(), message.value())
            position = int(message.offset() or 0) + 1
        if position < high:
            raise TimeoutError(f"could not read {RULES} to its end within {timeout:.0f}s")
        return state
    finally:
        consumer.close()


@dataclass(frozen=True)
class DeployPlan:
    version: str
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]


def plan_deploy(ruleset: RuleSet, deployed: DeployedState, at: dt.datetime) -> DeployPlan:
    new = {rule.id: rule_hash(rule_json(rule)) for rule in ruleset.rules}
    old = {rule_id: rule_hash(doc) for rule_id, doc in deployed.rules.items()}
    return DeployPlan(
        version=set_version(ruleset.rules, at),
        added=sorted(set(new) - set(old)),
        changed=sorted(k for k in set(new) & set(old) if new[k] != old[k]),
        removed=sorted(set(old) - set(new)),
        unchanged=sorted(k for k in set(new) & set(old) if new[k] == old[k]),
    )


def deploy(bootstrap: str, ruleset: RuleSet, plan: DeployPlan, at: dt.datetime,
           timeout: float = 30.0) -> None:
    """Publish the rules, tombstones, then the manifest; wait until Kafka confirmed all."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "acks": "all"})
    errors: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    documents = {rule.id: rule_json(rule) for rule in ruleset.rules}
    for rule_id, document in sorted(documents.items()):
        producer.produce(RULES, key=rule_id.encode(), on_delivery=delivered,
                         value=orjson.dumps({"version": plan.version, "rule": document}))
    for rule_id in plan.removed:
        producer.produce(RULES, key=rule_id.encode(), value=None, on_delivery=delivered)
    manifest = {"version": plan.version, "deployed": at.isoformat(),
                "rules": {k: rule_hash(v) for k, v in documents.items()}}
    producer.produce(RULES, key=MANIFEST_KEY.encode(), value=orjson.dumps(manifest),
                     on_delivery=delivered)
    remaining = producer.flush(timeout)
    if remaining or errors:
        raise RuntimeError(f"Kafka did not confirm the rule set ({remaining} unconfirmed): "
                           + "; ".join(errors[:3]))

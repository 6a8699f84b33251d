"""Rule sets on the compacted ``advisering.rules`` topic: deploy, read, verify.

A deployed set is one record per rule (key: rule id, value: the rule and the
set's version) followed by a manifest record (key ``__ruleset__``) naming the
version and the SHA-256 of every rule in it; a deleted rule gets a tombstone.
The topic has one partition, so a reader that sees the manifest has seen the
rules before it. Workers apply a set only when the manifest's Ed25519
signature verifies against one of their public keys
(:mod:`advisering.rulebook.signing`), every rule the manifest names is present
with the signed hash and the whole set validates, so a half-written, invalid
or forged set is never applied anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
from confluent_kafka import Producer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from advisering import metrics
from advisering.engine.rules import Rule, RuleSet, rules_from_documents
from advisering.events import Vocabulary
from advisering.kafka.clients import producer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.reading import end_offsets, open_consumer, read_range
from advisering.kafka.topics import RULES
from advisering.log import get_logger
from advisering.rulebook.signing import SignatureError, Signer, VerifyKeys

log = get_logger(__name__)

MANIFEST_KEY = "__ruleset__"


def rule_json(rule: Rule) -> dict[str, Any]:
    """The rule as the JSON record the rules topic carries."""
    return rule.model_dump(mode="json", exclude_none=True)


def rule_hash(document: Mapping[str, object]) -> str:
    """The SHA-256 of a rule's JSON with sorted keys: equal content, equal hash."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def set_version(rules: Iterable[Rule], at: dt.datetime) -> str:
    """A version that sorts by time and names the content: 20261129T140000Z-1a2b3c4d."""
    digest = hashlib.sha256(b"".join(
        orjson.dumps(rule_json(r), option=orjson.OPT_SORT_KEYS) for r in rules)).hexdigest()
    return f"{at:%Y%m%dT%H%M%SZ}-{digest[:8]}"


RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,80}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: At most this many rules in one manifest (operators' sets hold tens).
MAX_MANIFEST_RULES = 10_000
DEFAULT_MAX_RECORD_BYTES = 262_144


class RuleRecord(BaseModel):
    """The value of a rule record: the rule's document and the set it came with."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    version: str = Field(min_length=1, max_length=100)
    rule: dict[str, Any]


class Manifest(BaseModel):
    """The value of the ``__ruleset__`` record: the set's version and every rule's hash."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    version: str = Field(min_length=1, max_length=100)
    deployed: str = Field(default="", max_length=64)
    rules: dict[RuleId, Sha256] = Field(max_length=MAX_MANIFEST_RULES)
    # Empty when unsigned (refused by workers); checked by VerifyKeys, not here, so a
    # wrong one counts as a rejected set (reason "signature"), not an invalid record.
    key_id: str = Field(default="", max_length=64)
    signature: str = Field(default="", max_length=200)

    def verify(self, keys: VerifyKeys) -> None:
        """Return when one of ``keys`` signed this manifest; else SignatureError."""
        keys.verify(self.version, self.deployed, self.rules, self.key_id, self.signature)


class RulesetRejected(ValueError):
    """A complete-looking set the workers must not apply; ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class InvalidRecord(ValueError):
    """A record on the rules topic that is not a rule, tombstone or manifest.

    ``reason`` is one of a fixed set (a metric label); ``detail`` names where
    the record went wrong (a field and pydantic's error type), never content.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail[:160]


def _schema_detail(model: type[BaseModel], exc: ValidationError) -> str:
    """Which field failed and how; only the model's own field names, never a key or value."""
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0] if errors else {"loc": (), "type": "invalid"}
    where = first["loc"][0] if first["loc"] else "value"
    name = where if isinstance(where, str) and where in model.model_fields else "value"
    return f"{name}: {first['type']} ({len(errors)} error(s))"


@dataclass
class DeployedState:
    """What the topic says: the latest record per rule id and the latest manifest.

    Records are checked before they change anything: a record that is not
    valid (not JSON, not an object, a rule without ``rule``, a manifest
    without ``rules``, a key that is not UTF-8 or not a rule id, too large
    or too deep) is logged as ``ruleset_record_invalid`` with its offset,
    counted, and skipped, so a worker keeps the set it has.
    """

    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    # The version each rule record came with (a deploy that was cut off leaves its own).
    versions: dict[str, str] = field(default_factory=dict)
    manifest: Manifest | None = None
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    # The offset after the last record read: where a watcher goes on from.
    end: int = 0

    def apply(self, key: bytes | None, value: bytes | None, offset: int = -1) -> bool:
        """Take one record; True when it was a manifest (a set may now be complete)."""
        try:
            return self._apply(key, value)
        except InvalidRecord as exc:
            metrics.RULESET_RECORDS_INVALID.labels(exc.reason).inc()
            log.warning("ruleset_record_invalid", offset=offset, reason=exc.reason,
                        detail=exc.detail)
            return False

    def _apply(self, key: bytes | None, value: bytes | None) -> bool:
        name = _record_key(key)
        if value is not None and len(value) > self.max_record_bytes:
            raise InvalidRecord("too_large", f"{len(value)} bytes > {self.max_record_bytes}")
        if name == MANIFEST_KEY:
            self.manifest = None if value is None else _parse(Manifest, value)
            return True
        if not _RULE_ID.fullmatch(name):
            raise InvalidRecord("key", "not a rule id")
        if value is None:
            self.rules.pop(name, None)
            self.versions.pop(name, None)
            self.hashes.pop(name, None)
            return False
        record = _parse(RuleRecord, value)
        document = record.rule
        try:
            digest = rule_hash(document)
        except orjson.JSONEncodeError as exc:  # nested beyond what orjson writes
            raise InvalidRecord("too_deep", "rule") from exc
        self.rules[name] = document
        self.versions[name] = record.version
        self.hashes[name] = digest
        return False

    def complete_set(self, vocabulary: Vocabulary) -> RuleSet | None:
        """The manifest's rule set, when every rule is present, unchanged and valid."""
        if self.manifest is None:
            return None
        documents = []
        for rule_id, digest in sorted(self.manifest.rules.items()):
            document = self.rules.get(rule_id)
            if document is None or self.hashes.get(rule_id) != digest:
                return None
            documents.append((Path(f"{RULES}/{rule_id}"), document))
        return rules_from_documents(documents, vocabulary, version=self.manifest.version)

    def verified_set(self, vocabulary: Vocabulary, keys: VerifyKeys) -> RuleSet | None:
        """The manifest's set if its signature and every rule verify; None while incomplete.

        RulesetRejected("signature") for an unsigned or wrongly signed manifest
        and for a rule whose content is not the signed one (the manifest comes
        after its rules on the one partition, so a different rule there is not
        one still on its way); YamlFileError when the signed set does not validate.
        """
        if self.manifest is None:
            return None
        self.verify(keys)
        if any(rule_id not in self.rules for rule_id in self.manifest.rules):
            return None
        return self.complete_set(vocabulary)

    def verify(self, keys: VerifyKeys) -> None:
        """RulesetRejected unless ``keys`` signed the manifest and the rules present.

        A rule that differs from its signed hash but came with another
        version is a later deploy's that was cut off before its manifest
        (``incomplete``); one that came with the manifest's own version was
        changed after signing (``signature``).
        """
        manifest = self.manifest
        if manifest is None:
            raise RulesetRejected("incomplete", "no manifest")
        try:
            manifest.verify(keys)
        except SignatureError as exc:
            raise RulesetRejected("signature", exc.detail) from None
        differ = [rule_id for rule_id, digest in manifest.rules.items()
                  if rule_id in self.hashes and self.hashes[rule_id] != digest]
        changed = sum(1 for rule_id in differ if self.versions.get(rule_id) == manifest.version)
        if changed:
            raise RulesetRejected("signature", f"{changed} rule(s) differ from the signed hash")
        if differ:
            raise RulesetRejected("incomplete", f"{len(differ)} rule(s) of another deploy")

    def signed_by(self, signer: Signer) -> bool:
        """True when the deployed manifest verifies with ``signer``'s own public key."""
        if self.manifest is None:
            return False
        try:
            self.manifest.verify(signer.verify_keys())
        except SignatureError:
            return False
        return True


_RULE_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,80}")
_MAX_KEY_BYTES = 128
_Model = TypeVar("_Model", RuleRecord, Manifest)


def _record_key(key: bytes | None) -> str:
    if key is None:
        raise InvalidRecord("key", "no key")
    if len(key) > _MAX_KEY_BYTES:
        raise InvalidRecord("key", f"{len(key)} bytes")
    try:
        return key.decode()
    except UnicodeDecodeError as exc:
        raise InvalidRecord("key", "not UTF-8") from exc


def _parse(model: type[_Model], value: bytes) -> _Model:
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("not_json", f"at byte {exc.pos}") from exc
    if not isinstance(parsed, dict):
        raise InvalidRecord("not_object", type(parsed).__name__)
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise InvalidRecord("schema", _schema_detail(model, exc)) from exc


def read_deployed(kafka: KafkaConnection, timeout: float = 30.0,
                  max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> DeployedState:
    """Read ``advisering.rules`` from the beginning to its current end (``state.end``)."""
    consumer = open_consumer(kafka, "rules-reader")
    state = DeployedState(max_record_bytes=max_record_bytes)
    try:
        ends = end_offsets(consumer, RULES, timeout)
        for record in read_range(consumer, RULES, dict.fromkeys(ends, 0), ends, timeout=timeout):
            state.apply(record.key, record.value, record.offset)
        state.end = ends.get(0, 0)
        return state
    finally:
        consumer.close()


@dataclass(frozen=True)
class DeployPlan:
    """What a deploy would do: the new set version and the rule ids by what happens to them."""

    version: str
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]


_VERSION_TIME = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{8}$")


def version_time(version: str) -> dt.datetime | None:
    """When a set of :func:`set_version`'s form was made; None for any other version."""
    found = _VERSION_TIME.match(version)
    if found is None:
        return None
    return dt.datetime.strptime(found.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def is_older(candidate: str, applied: str) -> bool:
    """True when ``candidate`` was made strictly before ``applied`` (both of deploy's form)."""
    new, old = version_time(candidate), version_time(applied)
    return new is not None and old is not None and new < old


def deploy_time(deployed: DeployedState, now: dt.datetime) -> dt.datetime:
    """``now``, or a second after the deployed set's time when a clock lags behind it.

    Workers refuse a set older than the one they apply (reason ``stale``), so
    a deploy from a machine whose clock is behind must still sort later.
    """
    previous = version_time(deployed.manifest.version) if deployed.manifest else None
    if previous is not None and previous >= now:
        return previous + dt.timedelta(seconds=1)
    return now


def plan_deploy(ruleset: RuleSet, deployed: DeployedState, at: dt.datetime) -> DeployPlan:
    """Compare the rule files with what the topic holds, by each rule's hash."""
    new = {rule.id: rule_hash(rule_json(rule)) for rule in ruleset.rules}
    old = deployed.hashes
    return DeployPlan(
        version=set_version(ruleset.rules, at),
        added=sorted(set(new) - set(old)),
        changed=sorted(k for k in set(new) & set(old) if new[k] != old[k]),
        removed=sorted(set(old) - set(new)),
        unchanged=sorted(k for k in set(new) & set(old) if new[k] == old[k]),
    )


def deploy_producer_config(kafka: KafkaConnection, timeout: float) -> dict[str, Any]:
    """``rules deploy``'s producer: durable; a record not confirmed when the flush gives up fails.

    With the delivery timeout equal to the flush's, librdkafka never delivers
    a record after ``deploy`` reported the set unconfirmed.
    """
    return producer_config(kafka, client_id="advisering-deploy", delivery_timeout=timeout)


def signed_manifest(version: str, deployed: str, rules: dict[str, str],
                    signer: Signer) -> dict[str, Any]:
    """The manifest record's value, signed by ``signer``."""
    return {"version": version, "deployed": deployed, "rules": rules,
            "key_id": signer.key_id, "signature": signer.sign(version, deployed, rules)}


def deploy(kafka: KafkaConnection, ruleset: RuleSet, plan: DeployPlan, at: dt.datetime,
           signer: Signer, timeout: float = 60.0) -> None:
    """Publish the rules, tombstones, then the signed manifest; wait until Kafka confirmed all."""
    producer = Producer(deploy_producer_config(kafka, timeout))
    errors: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            errors.append(str(error))

    documents = {rule.id: rule_json(rule) for rule in ruleset.rules}
    for rule_id, document in sorted(documents.items()):
        producer.produce(RULES, key=rule_id.encode(), on_delivery=delivered,
                         value=orjson.dumps({"version": plan.version, "rule": document}))
    for rule_id in plan.removed:
        producer.produce(RULES, key=rule_id.encode(), value=None, on_delivery=delivered)
    manifest = signed_manifest(plan.version, at.isoformat(),
                               {k: rule_hash(v) for k, v in documents.items()}, signer)
    producer.produce(RULES, key=MANIFEST_KEY.encode(), value=orjson.dumps(manifest),
                     on_delivery=delivered)
    remaining = producer.flush(timeout)
    if remaining or errors:
        raise RuntimeError(f"Kafka did not confirm the rule set ({remaining} unconfirmed): "
                           + "; ".join(errors[:3]))

"""Records on advisering.rules are validated: a bad one is logged, counted and skipped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from advisering.engine.rules import RuleSet, load_rules
from advisering.events import Vocabulary
from advisering.kafka.topics import load_vocabulary
from advisering.rulebook.deploy import (
    MANIFEST_KEY,
    DeployedState,
    plan_deploy,
    rule_hash,
    rule_json,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "0101901234"  # CPR-shaped: must never reach a log line


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return load_vocabulary(ROOT / "topics")


@pytest.fixture(scope="module")
def shipped(vocabulary: Vocabulary) -> RuleSet:
    return load_rules(ROOT / "rules", vocabulary)


def set_records(ruleset: RuleSet, version: str) -> list[tuple[bytes, bytes]]:
    """The records `rules deploy` writes for ``ruleset``: rules, then the manifest."""
    documents = {rule.id: rule_json(rule) for rule in ruleset.rules}
    records = [(rule_id.encode(), orjson.dumps({"version": version, "rule": document}))
               for rule_id, document in sorted(documents.items())]
    manifest = {"version": version, "deployed": "2026-12-03T08:00:00+00:00",
                "rules": {k: rule_hash(v) for k, v in documents.items()}}
    return [*records, (MANIFEST_KEY.encode(), orjson.dumps(manifest))]


def invalid(reason: str) -> float:
    return REGISTRY.get_sample_value("advisering_ruleset_records_invalid_total",
                                     {"reason": reason}) or 0.0


GARBAGE = [
    ("not-json", b"my-rule", b'{"version": "v", "rule": ' + SECRET.encode(), "not_json"),
    ("truncated", b"my-rule", b'{"version": "v", "rule": {"id": "my-r', "not_json"),
    ("json-not-object", b"my-rule", b'["' + SECRET.encode() + b'"]', "not_object"),
    ("json-number", MANIFEST_KEY.encode(), b"2101901234", "not_object"),
    ("rule-without-rule", b"my-rule", orjson.dumps({"version": "v", "id": SECRET}), "schema"),
    ("rule-not-object", b"my-rule", orjson.dumps({"version": "v", "rule": SECRET}), "schema"),
    ("manifest-without-rules", MANIFEST_KEY.encode(), orjson.dumps({"version": "v"}), "schema"),
    ("manifest-bad-hash", MANIFEST_KEY.encode(),
     orjson.dumps({"version": "v", "rules": {"my-rule": SECRET}}), "schema"),
    ("manifest-bad-rule-id", MANIFEST_KEY.encode(),
     orjson.dumps({"version": "v", "rules": {SECRET + " X": "0" * 64}}), "schema"),
    ("key-not-utf8", b"\xff\xfe\x00rule", orjson.dumps({"version": "v", "rule": {}}), "key"),
    ("key-not-a-rule-id", b"Some Foreign Key", orjson.dumps({"version": "v", "rule": {}}),
     "key"),
    ("no-key", None, orjson.dumps({"version": "v", "rule": {}}), "key"),
    ("huge", b"my-rule", b'{"version": "v", "rule": {"x": "' + b"y" * 300_000 + b'"}}',
     "too_large"),
    ("deeper-than-orjson-writes", b"my-rule",
     b'{"version": "v", "rule": ' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"}", "too_deep"),
    ("deeper-than-orjson-reads", b"my-rule", b'{"rule": ' + b"[" * 2000 + b"]" * 2000 + b"}",
     "not_json"),
]


@pytest.mark.parametrize(("key", "value", "reason"), [g[1:] for g in GARBAGE],
                         ids=[g[0] for g in GARBAGE])
def test_a_bad_record_is_logged_counted_and_skipped_and_the_set_stays(
    key: bytes | None, value: bytes, reason: str, shipped: RuleSet, vocabulary: Vocabulary,
) -> None:
    """After a valid set, a bad record changes nothing; it is counted and logged, no content."""
    state = DeployedState()
    for k, v in set_records(shipped, "v1"):
        state.apply(k, v)
    before = invalid(reason)
    with structlog.testing.capture_logs() as logs:
        assert state.apply(key, value, offset=42) is False
    assert invalid(reason) == before + 1
    assert [(e["event"], e["log_level"], e["offset"], e["reason"]) for e in logs] == [
        ("ruleset_record_invalid", "warning", 42, reason)]
    assert set(logs[0]) == {"event", "log_level", "offset", "reason", "detail", "module"}
    assert SECRET not in str(logs) and "2101901234" not in str(logs)
    assert len(logs[0]["detail"]) <= 160
    complete = state.complete_set(vocabulary)
    assert complete is not None and complete.version == "v1"
    assert len(complete.rules) == len(shipped.rules)


def test_a_manifest_naming_a_missing_rule_is_valid_but_incomplete(vocabulary: Vocabulary) -> None:
    """A well-formed manifest whose rule never came gives no set (the worker keeps its own)."""
    state = DeployedState()
    manifest = {"version": "v2", "rules": {"never-sent": "0" * 64}}
    assert state.apply(MANIFEST_KEY.encode(), orjson.dumps(manifest)) is True
    assert state.complete_set(vocabulary) is None


def test_garbage_then_a_valid_set_gives_the_valid_set(
    shipped: RuleSet, vocabulary: Vocabulary,
) -> None:
    """Every kind of garbage first, then a deployed set: the set is complete and planned as such."""
    state = DeployedState()
    for _, key, value, _ in GARBAGE:
        state.apply(key, value)
    for k, v in set_records(shipped, "v3"):
        state.apply(k, v)
    complete = state.complete_set(vocabulary)
    assert complete is not None and complete.version == "v3"
    plan = plan_deploy(shipped, state, dt.datetime(2026, 12, 3, tzinfo=dt.UTC))
    assert plan.unchanged == sorted(rule.id for rule in shipped.rules)
    assert not (plan.added or plan.changed or plan.removed)


def test_a_tombstone_removes_a_rule_and_a_manifest_tombstone_the_manifest(
    shipped: RuleSet,
) -> None:
    """Tombstones are valid records: they delete what their key names."""
    state = DeployedState()
    for k, v in set_records(shipped, "v4"):
        state.apply(k, v)
    first = shipped.rules[0].id
    assert state.apply(first.encode(), None) is False
    assert first not in state.rules and first not in state.hashes
    assert state.apply(MANIFEST_KEY.encode(), None) is True
    assert state.manifest is None


SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(st.none(), st.binary(max_size=40),
                     st.sampled_from([MANIFEST_KEY.encode(), b"my-rule"])),
       value=st.one_of(st.none(), st.binary(max_size=200),
                       st.recursive(SCALARS,
                                    lambda inner: st.lists(inner) | st.dictionaries(
                                        st.sampled_from(["version", "rule", "rules", "x"]),
                                        inner), max_leaves=20).map(orjson.dumps)))
def test_apply_never_raises(key: bytes | None, value: bytes | None) -> None:
    """Random keys and values (bytes, JSON of any shape) never make apply raise."""
    state = DeployedState()
    assert state.apply(key, value) in (True, False)

"""Settings: parsed from ADVISERING_* variables, frozen, with derived defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from advisering.dev.local_kafka import (
    java_major_version,
    new_cluster_id,
    server_properties,
)
from advisering.settings import MissingPseudonymKeyError, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ADVISERING_"):
            monkeypatch.delenv(name)


def test_defaults_follow_design() -> None:
    """Without variables the bootstrap is the local broker and dirs are rules/ and topics/."""
    settings = Settings()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.rules_dir == Path("rules")
    assert settings.topics_dir == Path("topics")
    assert settings.uses_local_broker()


def test_environment_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """ADVISERING_* variables set the fields, and the local port moves the bootstrap."""
    monkeypatch.setenv("ADVISERING_KAFKA_PORT", "19092")
    monkeypatch.setenv("ADVISERING_LOG_LEVEL", "debug")
    monkeypatch.setenv("ADVISERING_RULES_DIR", "/etc/advisering/rules")
    settings = Settings()
    assert settings.bootstrap_servers == "127.0.0.1:19092"
    assert settings.log_level == "DEBUG"
    assert settings.rules_dir == Path("/etc/advisering/rules")
    assert settings.broker_state_dir.name == "broker-19092"


def test_remote_cluster_is_not_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bootstrap pointing elsewhere means the local broker is not used."""
    monkeypatch.setenv("ADVISERING_BOOTSTRAP_SERVERS", "kafka-0.kommune.internal:9092")
    assert not Settings().uses_local_broker()


def test_settings_are_frozen() -> None:
    """Nobody can change the settings after start-up."""
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.kafka_port = 1234  # type: ignore[misc]


def test_invalid_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that is not a number is a validation error, not a crash later."""
    monkeypatch.setenv("ADVISERING_KAFKA_PORT", "ninety")
    with pytest.raises(ValidationError):
        Settings()


def test_pseudonym_key_required_and_long_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pseudonym key is refused when missing or shorter than 32 bytes."""
    with pytest.raises(MissingPseudonymKeyError, match="not set"):
        Settings().pseudonym_key_bytes()
    monkeypatch.setenv("ADVISERING_PSEUDONYM_KEY", "short")
    with pytest.raises(MissingPseudonymKeyError, match="at least 32 bytes"):
        Settings().pseudonym_key_bytes()
    monkeypatch.setenv("ADVISERING_PSEUDONYM_KEY", "k" * 32)
    assert Settings().pseudonym_key_bytes() == b"k" * 32


def test_java_versions_parse() -> None:
    """Both old (1.8) and new (17.0.15) java -version formats are understood."""
    assert java_major_version('openjdk version "17.0.15" 2025-04-15') == 17
    assert java_major_version('java version "1.8.0_392"') == 8
    assert java_major_version('openjdk version "21" 2023-09-19') == 21
    assert java_major_version("nonsense") is None


def test_broker_properties_suit_one_node_and_faust(tmp_path: Path) -> None:
    """The broker config has replication factors 1 and no initial rebalance delay."""
    text = server_properties(9092, 9093, tmp_path)
    assert "offsets.topic.replication.factor=1" in text
    assert "group.initial.rebalance.delay.ms=0" in text
    assert "process.roles=broker,controller" in text
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" in text


def test_cluster_ids_never_start_with_a_hyphen() -> None:
    """KRaft cluster ids are 22 base64url characters and never look like a command-line option."""
    ids = [new_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)

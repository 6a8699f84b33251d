"""The Helm chart sets only variables advisering reads: a misspelt name would be ignored."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from advisering.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_advisering_variable_of_the_chart_is_a_setting() -> None:
    """Each ADVISERING_* name in helm/ is a Settings field (the Kafka security ones included)."""
    known = {f"ADVISERING_{name.upper()}" for name in Settings.model_fields}
    used = {name for path in (ROOT / "helm").rglob("*") if path.is_file()
            for name in re.findall(r"ADVISERING_[A-Z0-9_]+", path.read_text(encoding="utf-8"))}
    assert {"ADVISERING_KAFKA_SECURITY_PROTOCOL", "ADVISERING_KAFKA_SASL_MECHANISM",
            "ADVISERING_KAFKA_SASL_USERNAME", "ADVISERING_KAFKA_SASL_PASSWORD",
            "ADVISERING_KAFKA_SSL_CA_FILE"} <= used
    assert sorted(used - known) == []


def test_chart_token_defaults_are_the_settings_defaults() -> None:
    """inbox.tokens in values.yaml defaults to what ADVISERING_TOKEN_* defaults to."""
    values = yaml.safe_load((ROOT / "helm" / "advisering" / "values.yaml").read_text())
    fields = Settings.model_fields
    assert values["inbox"]["tokens"] == {
        "audience": fields["token_audience"].default, "issuer": fields["token_issuer"].default,
        "maxLifetimeSeconds": fields["token_max_lifetime_seconds"].default,
        "leewaySeconds": fields["token_leeway_seconds"].default}

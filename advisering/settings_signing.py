"""The rule-signing settings, a part of the one ``Settings`` object (which inherits them).

Operators sign rule sets (``rules deploy``, the private key); workers verify
them (the public keys). Both are file paths, read by
:mod:`advisering.rulebook.signing` only through ``Settings``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings


class RulesSigningSettings(BaseSettings):
    """``ADVISERING_RULES_SIGNING_KEY_FILE`` and ``ADVISERING_RULES_VERIFY_KEYS_FILE``."""

    rules_signing_key_file: Path | None = Field(
        default=None,
        description="operators only: the Ed25519 private key (PEM) `rules deploy` signs rule "
        "sets with; `rules deploy` refuses to run without it (a `--dry-run` needs none; see "
        "[Signed rule sets](operators.md#signed-rule-sets))",
    )
    rules_verify_keys_file: Path | None = Field(
        default=None,
        description="workers: one or more Ed25519 public keys (PEM blocks in one file) whose "
        "signatures a worker accepts on `advisering.rules`; the worker refuses to start "
        "without it",
    )

    @field_validator("rules_signing_key_file", "rules_verify_keys_file", mode="before")
    @classmethod
    def _empty_key_file_is_unset(cls, value: object) -> object:
        # An empty variable means unset; a distinct name, or the Kafka mixin's would shadow it.
        return None if isinstance(value, str) and not value.strip() else value

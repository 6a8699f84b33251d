"""The audit store and citizen-insight settings, a part of the one ``Settings`` object.

Read by ``advisering audit-sink`` (which fills the store from
``advisering.audit`` and prunes it), by ``advisering insight`` and by serve's
``POST /api/v1/insight``. The retention default is explained in the README
("The audit store and the citizen's insight").
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from advisering.settings_store import POSTGRES_SCHEMES

DEFAULT_AUDIT_RETENTION_DAYS = 1827
"""Five years (with a leap day): see the README for why years, not days."""


class AuditSettings(BaseSettings):
    """``ADVISERING_AUDIT_*``, ``ADVISERING_INSIGHT_*`` and the previous pseudonym key."""

    audit_db: Path | SecretStr | None = Field(
        default=None, union_mode="left_to_right",
        description="the audit store `audit-sink` fills and `insight` reads: a SQLite file or "
        "a `postgresql://` URL (a secret); none means `audit.sqlite3` beside the SQLite inbox "
        "database, or with the inbox on PostgreSQL the inbox's database (see [the audit store]"
        "(operators.md#the-audit-store-on-postgresql))",
    )
    audit_group: str = Field(
        default="advisering-audit", min_length=1, max_length=200,
        description="the consumer group of `advisering audit-sink`",
    )
    audit_retention_days: int = Field(
        default=DEFAULT_AUDIT_RETENTION_DAYS, ge=30, le=36_525,
        description="disclosures (and insight lookups) older than this are deleted from the "
        "audit store (30 days to 100 years; default five years, see [The audit store]"
        "(../README.md#the-audit-store-and-the-citizens-insight))",
    )
    audit_prune_interval_seconds: float = Field(
        default=3600.0, ge=1, le=86_400,
        description="how often `audit-sink` deletes what is past the retention",
    )
    audit_max_record_bytes: int = Field(
        default=65_536, ge=1024, le=4_194_304,
        description="largest audit record `audit-sink` stores; a larger one is a dead letter "
        "`too_large`",
    )
    audit_sink_web_port: int = Field(
        default=6068, ge=0, le=65535,
        description="`audit-sink`'s Prometheus metrics on 127.0.0.1 (0: none)",
    )
    insight_max_disclosures: int = Field(
        default=10_000, ge=1, le=1_000_000,
        description="most disclosures one insight answer lists; a longer log says it was cut "
        "(`truncated`) and asks for a shorter period",
    )
    insight_max_body_bytes: int = Field(
        default=4096, ge=256, le=65_536,
        description="largest body of `POST /api/v1/insight` (else 413)",
    )
    insight_sender: str = Field(
        default="Kommunen", min_length=1, max_length=200,
        description="who signs the insight letter (`--format html`), e.g. the municipality's "
        "name",
    )
    pseudonym_key_previous: SecretStr | None = Field(
        default=None,
        description="after a pseudonym key rotation: the previous key, so that `insight` "
        "also finds disclosures recorded under the old pseudonym",
    )

    @field_validator("audit_db", "pseudonym_key_previous", mode="before")
    @classmethod
    def _empty_audit_value_is_unset(cls, value: object) -> object:
        # An empty variable (a template's blank value) means unset, not the path ".".
        if isinstance(value, str) and not value.strip():
            return None
        # A database URL may carry the password: a secret, so no repr or log shows it.
        if isinstance(value, str) and value.startswith(POSTGRES_SCHEMES):
            return SecretStr(value)
        return value

    def audit_database(self, inbox_db: Path | SecretStr) -> Path | SecretStr:
        """The audit store: the setting, or beside the inbox (``ADVISERING_INBOX_DB``).

        Unset, it is ``audit.sqlite3`` beside a SQLite inbox, and with the inbox
        on PostgreSQL (a ``SecretStr`` URL) the same database: its tables have
        their own names and schema versions, and every ``serve`` replica and
        the sink then share it without another setting.
        """
        if self.audit_db is not None:
            return self.audit_db
        if isinstance(inbox_db, SecretStr):
            return inbox_db
        return inbox_db.parent / "audit.sqlite3"

    def previous_pseudonym_key_bytes(self) -> bytes | None:
        """The previous pseudonym key (rotation), when one is set."""
        if self.pseudonym_key_previous is None:
            return None
        return self.pseudonym_key_previous.get_secret_value().encode()

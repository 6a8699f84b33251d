"""The inbox store's settings, a part of the one ``Settings`` object (which inherits them).

``ADVISERING_INBOX_DB`` chooses the store: a file path is
the embedded SQLite store, a ``postgresql://`` URL the shared PostgreSQL one
that several ``serve`` replicas can use at once. These settings bound the
PostgreSQL connection pool: each replica holds at most ``max`` connections,
plus one for LISTEN (the live streams). The URL itself is a secret (it may
carry the password): it is held as a ``SecretStr`` and never logged.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def default_cache_dir() -> Path:
    """``~/.cache/advisering``: read when settings are built, so importing reads no home.

    Here rather than in ``advisering.settings`` (which re-exports it) because
    the inbox's default file is below it.
    """
    return Path.home() / ".cache" / "advisering"


class InboxStoreSettings(BaseSettings):
    """``ADVISERING_INBOX_DB`` and ``ADVISERING_INBOX_PG_*`` (the pool; unused with SQLite)."""

    inbox_db: Path | SecretStr = Field(
        default_factory=lambda: default_cache_dir() / "inbox.sqlite3",
        union_mode="left_to_right",
        description="the inbox database: a SQLite file, or a `postgresql://` URL for a store "
        "several `serve` replicas share (see [PostgreSQL](operators.md#the-inbox-on-postgresql))",
    )

    inbox_pg_pool_min: int = Field(
        default=1, ge=0, le=100,
        description="PostgreSQL inbox: connections each `serve` keeps open (0 to 100)",
    )
    inbox_pg_pool_max: int = Field(
        default=10, ge=1, le=100,
        description="PostgreSQL inbox: most connections each `serve` opens (1 to 100; one "
        "more listens for the other replicas' notifications)",
    )
    inbox_pg_connect_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300,
        description="PostgreSQL inbox: how long opening one connection may take",
    )
    inbox_pg_pool_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600,
        description="PostgreSQL inbox: how long a request waits for a free connection before "
        "it fails (the page answers 500 and the consumer retries its batch)",
    )
    inbox_pg_statement_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="PostgreSQL inbox: the longest one statement may run (`statement_timeout`)",
    )

    @field_validator("inbox_db", mode="before")
    @classmethod
    def _database_url_is_secret(cls, value: object) -> object:
        # A URL may carry the password: held as a secret, so no repr or log shows it.
        if isinstance(value, str) and value.startswith(POSTGRES_SCHEMES):
            return SecretStr(value)
        return value

    def inbox_sqlite_path(self) -> Path | None:
        """The SQLite inbox file, or None when the inbox is on PostgreSQL."""
        return self.inbox_db if isinstance(self.inbox_db, Path) else None

    def inbox_postgres_url(self) -> str | None:
        """The PostgreSQL inbox's URL (a secret: never log it), or None for SQLite."""
        if isinstance(self.inbox_db, SecretStr):
            return self.inbox_db.get_secret_value()
        return None

    @model_validator(mode="after")
    def _pool_bounds(self) -> InboxStoreSettings:
        if self.inbox_pg_pool_min > self.inbox_pg_pool_max:
            raise ValueError("ADVISERING_INBOX_PG_POOL_MIN must not exceed "
                             "ADVISERING_INBOX_PG_POOL_MAX")
        return self

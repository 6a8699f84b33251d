"""The inbox's schema, as numbered migrations for each store; applied at start and by `db migrate`.

Each store records the versions it has applied in a ``schema_version``
table. Opening a store applies the missing ones in order, each in its own
transaction together with its row in that table, so a crash mid-way leaves
the schema at a whole version. A migration is never edited once released: a
change is a new, higher version.

SQLite version 1 is the schema the store had before versions existed, written
so that it also upgrades such an older file in place (its tables are kept, and
its two indexes on the caseworker id alone are replaced by ones on the pair
(department, caseworker)). PostgreSQL takes an advisory lock while it
migrates, so replicas starting together apply each version once.

``migrate_postgres`` is the one PostgreSQL migrator: the inbox runs it with
``POSTGRES_MIGRATIONS`` and ``schema_version``, the audit store
(``advisering.audit.postgres``) with its own list and ``audit_schema_version``,
so the two can share one database (or not) and each keeps its own versions.
It is synchronous (the audit store is; the inbox calls it in a worker thread).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

SQLITE_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the notifications and their deliveries (upgrades pre-version files too)
        """CREATE TABLE IF NOT EXISTS notifications (
            id TEXT PRIMARY KEY, caseworker TEXT, unit TEXT NOT NULL,
            department TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL,
            created TEXT NOT NULL, received TEXT NOT NULL, body BLOB NOT NULL,
            read_at TEXT, feedback TEXT, feedback_reason TEXT, feedback_at TEXT)""",
        "DROP INDEX IF EXISTS by_caseworker",
        "DROP INDEX IF EXISTS by_unit",
        """CREATE INDEX IF NOT EXISTS by_recipient
            ON notifications (department, caseworker, read_at, created)""",
        """CREATE INDEX IF NOT EXISTS by_department_unit
            ON notifications (department, unit, caseworker, read_at, created)""",
        """CREATE TABLE IF NOT EXISTS deliveries (
            notification_id TEXT NOT NULL, channel TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'settled')),
            outcome TEXT, updated TEXT NOT NULL, PRIMARY KEY (notification_id, channel))""",
        """CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state)
            WHERE state = 'pending'""",
    ),
)

POSTGRES_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: as SQLite's; times are ISO 8601 text and ids compare bytewise, as there
        """CREATE TABLE notifications (
            seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            id TEXT COLLATE "C" PRIMARY KEY, caseworker TEXT COLLATE "C",
            unit TEXT COLLATE "C" NOT NULL, department TEXT COLLATE "C" NOT NULL,
            rule TEXT NOT NULL, severity TEXT NOT NULL, created TEXT COLLATE "C" NOT NULL,
            received TEXT NOT NULL, body BYTEA NOT NULL, read_at TEXT COLLATE "C",
            feedback TEXT, feedback_reason TEXT, feedback_at TEXT)""",
        """CREATE INDEX by_recipient
            ON notifications (department, caseworker, read_at, created)""",
        """CREATE INDEX by_department_unit
            ON notifications (department, unit, caseworker, read_at, created)""",
        """CREATE TABLE deliveries (
            notification_id TEXT COLLATE "C" NOT NULL, channel TEXT COLLATE "C" NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'settled')),
            outcome TEXT, updated TEXT NOT NULL, PRIMARY KEY (notification_id, channel))""",
        "CREATE INDEX deliveries_due ON deliveries (state) WHERE state = 'pending'",
    ),
)

INBOX_VERSIONS = "schema_version"
"""The table of the inbox's applied versions (the audit store has its own)."""
VERSION_TABLE = f"""CREATE TABLE IF NOT EXISTS {INBOX_VERSIONS} (
    version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"""
POSTGRES_LOCK = 0x616476697365  # pg_advisory_xact_lock key: "advise" in ASCII


@dataclass(frozen=True)
class Migrated:
    """A store's schema version before and after opening it (equal: nothing to do)."""

    before: int
    after: int


def now() -> str:
    """The time a version was applied, as the store's other times are written."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def migrate_sqlite(db: sqlite3.Connection) -> Migrated:
    """Apply SQLite's missing versions (``db`` in autocommit mode, as the store opens it)."""
    db.execute(VERSION_TABLE)
    before = int(db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])
    for version, statements in enumerate(SQLITE_MIGRATIONS, start=1):
        if version <= before:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it since we looked (it holds the write lock).
            if db.execute("SELECT 1 FROM schema_version WHERE version = ?",
                          (version,)).fetchone():
                db.execute("COMMIT")
                continue
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version, applied) VALUES (?, ?)",
                       (version, now()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return Migrated(before, max(before, len(SQLITE_MIGRATIONS)))


def migrate_postgres(db: psycopg.Connection[Any], migrations: Sequence[Sequence[str]],
                     versions: str = INBOX_VERSIONS) -> Migrated:
    """Apply the missing ``migrations`` (recorded in table ``versions``) under the advisory lock.

    One transaction, one savepoint per version: whole versions only. Every
    store's migration takes the same lock, so replicas (and the audit sink)
    starting together wait for each other and apply each version once.
    """
    if not versions.replace("_", "").isalnum():
        raise ValueError("a version table's name is letters, digits and _")
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (POSTGRES_LOCK,))
        db.execute(VERSION_TABLE.replace(INBOX_VERSIONS, versions, 1))
        row = db.execute(f"SELECT COALESCE(MAX(version), 0) FROM {versions}").fetchone()  # noqa: S608
        before = int(row[0]) if row else 0
        for version, statements in enumerate(migrations, start=1):
            if version <= before:
                continue
            with db.transaction():
                for statement in statements:
                    db.execute(statement)
                db.execute(f"INSERT INTO {versions} (version, applied) "  # noqa: S608
                           "VALUES (%s, %s)", (version, now()))
    return Migrated(before, max(before, len(migrations)))

"""The audit store on PostgreSQL: the same rows and answers as ``SqliteAuditStore``, shared.

With the inbox on PostgreSQL, several ``serve`` replicas answer ``POST
/api/v1/insight`` and ``advisering audit-sink`` runs in a pod of its own: a
SQLite file cannot be shared between them, a PostgreSQL database can. This
store implements ``AuditStorage`` with the statements of the SQLite one
(``%s`` for ``?``, ``= ANY`` for ``IN``), so both pass one test suite:

- ``add_many`` inserts with ``ON CONFLICT (notification_id) DO NOTHING`` in
  one transaction: a record the topic carries twice (or two sinks are given
  during a rebalance) is one row;
- times are the fixed-width UTC text of ``utc_text`` in ``COLLATE "C"``
  columns, so text order is time order, as in SQLite; the index is
  (citizen, created_utc);
- ``prune`` deletes disclosures and lookups before the cut-off in one
  transaction; lookups are rows, as in SQLite.

The interface is synchronous, as the SQLite store's and its callers' are
(the sink is a plain consumer loop, the API and the command run the store in
a worker thread), so this uses psycopg's synchronous ``ConnectionPool``. Its
schema is versioned with the inbox's machinery (``migrate_postgres``, the
same advisory lock) in a table of its own, ``audit_schema_version``: the
audit tables may live in the inbox's database or in another. The URL is a
secret (it may carry the password) and is never logged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import orjson
from psycopg_pool import ConnectionPool

from advisering.audit.store import (
    LOOKUP_COLUMNS,
    Lookup,
    Pruned,
    disclosure_rows,
    lookup_of,
    lookup_row,
    period_where,
    utc_text,
)
from advisering.engine.notification import AuditRecord
from advisering.inbox.migrations import Migrated, migrate_postgres
from advisering.inbox.postgres import PoolLimits
from advisering.log import get_logger

log = get_logger(__name__)

AUDIT_VERSIONS = "audit_schema_version"
AUDIT_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: as SqliteAuditStore's SCHEMA; ids and times compare bytewise, as there
        """CREATE TABLE audit_disclosures (
            notification_id TEXT COLLATE "C" PRIMARY KEY,
            citizen TEXT COLLATE "C" NOT NULL, created_utc TEXT COLLATE "C" NOT NULL,
            received_utc TEXT NOT NULL, record TEXT NOT NULL)""",
        "CREATE INDEX audit_by_citizen ON audit_disclosures (citizen, created_utc)",
        "CREATE INDEX audit_by_time ON audit_disclosures (created_utc)",
        """CREATE TABLE audit_lookups (
            id TEXT COLLATE "C" PRIMARY KEY, asked_utc TEXT COLLATE "C" NOT NULL,
            citizen TEXT COLLATE "C" NOT NULL, via TEXT NOT NULL, caseworker TEXT,
            department TEXT, unit TEXT, jti TEXT, disclosures INTEGER NOT NULL)""",
        "CREATE INDEX lookups_by_citizen ON audit_lookups (citizen, asked_utc)",
        "CREATE INDEX lookups_by_time ON audit_lookups (asked_utc)",
    ),
)


class PostgresAuditStore:
    """The audit store in a PostgreSQL database; opened (and migrated) on construction."""

    def __init__(self, url: str, limits: PoolLimits | None = None) -> None:
        self.limits = limits or PoolLimits()
        self._pool = ConnectionPool(
            url, min_size=self.limits.min_size, max_size=self.limits.max_size,
            timeout=self.limits.pool_timeout,
            kwargs=self.limits.connection_kwargs("advisering-audit"),
            open=False, name="advisering-audit")
        self._pool.open(wait=self.limits.min_size > 0, timeout=self.limits.pool_timeout)
        try:
            with self._pool.connection() as db:
                self.migrated: Migrated = migrate_postgres(db, AUDIT_MIGRATIONS, AUDIT_VERSIONS)
        except BaseException:
            self._pool.close()
            raise
        if self.migrated.after != self.migrated.before:
            log.info("audit_schema_migrated", store="postgresql", before=self.migrated.before,
                     after=self.migrated.after)

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()

    def add_many(self, records: Sequence[AuditRecord]) -> int:
        """As ``SqliteAuditStore.add_many``: new records in one transaction; how many."""
        rows = disclosure_rows(records)
        if not rows:
            return 0
        with self._pool.connection() as db, db.transaction(), db.cursor() as cur:
            cur.executemany(
                "INSERT INTO audit_disclosures (notification_id, citizen, created_utc, "
                "received_utc, record) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (notification_id) DO NOTHING", rows)
            return max(cur.rowcount, 0)

    def disclosures(self, citizens: Sequence[str], start: dt.datetime | None,
                    end: dt.datetime | None, limit: int) -> list[AuditRecord]:
        """As ``SqliteAuditStore.disclosures``."""
        if not citizens:
            return []
        period, bounds = period_where(start, end, "%s")
        where = ["citizen = ANY(%s)", *period]
        params = [list(citizens), *bounds]
        with self._pool.connection() as db:
            rows = db.execute(
                f"SELECT record FROM audit_disclosures WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY created_utc, notification_id LIMIT %s", [*params, limit]).fetchall()
        return [AuditRecord.from_json(orjson.loads(row[0])) for row in rows]

    def add_lookup(self, lookup: Lookup) -> None:
        """As ``SqliteAuditStore.add_lookup``."""
        with self._pool.connection() as db:
            db.execute(f"INSERT INTO audit_lookups ({LOOKUP_COLUMNS}) "  # noqa: S608
                       "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", lookup_row(lookup))

    def lookups(self, citizens: Sequence[str]) -> list[Lookup]:
        """As ``SqliteAuditStore.lookups``."""
        if not citizens:
            return []
        with self._pool.connection() as db:
            rows = db.execute(
                f"SELECT {LOOKUP_COLUMNS} FROM audit_lookups "  # noqa: S608
                "WHERE citizen = ANY(%s) ORDER BY asked_utc, id", (list(citizens),)).fetchall()
        return [lookup_of(row) for row in rows]

    def prune(self, before: dt.datetime) -> Pruned:
        """As ``SqliteAuditStore.prune``: one transaction."""
        cutoff = utc_text(before)
        with self._pool.connection() as db, db.transaction():
            disclosures = db.execute(
                "DELETE FROM audit_disclosures WHERE created_utc < %s", (cutoff,)).rowcount
            lookups = db.execute(
                "DELETE FROM audit_lookups WHERE asked_utc < %s", (cutoff,)).rowcount
        return Pruned(max(disclosures, 0), max(lookups, 0))

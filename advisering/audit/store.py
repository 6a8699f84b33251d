"""The audit store: every disclosure by citizen pseudonym and time, and every insight lookup.

``advisering audit-sink`` fills it from ``advisering.audit`` (one row per
notification id: a record the topic carries twice is stored once), ``advisering
insight`` and serve's ``POST /api/v1/insight`` read it by pseudonym and period,
and write one lookup row per question asked (who asked about which pseudonym,
when). It holds exactly what the audit records hold (their JSON, as received,
beside the columns it is searched by) and never a CPR number: the sink refuses
records with a CPR-shaped value, and lookups are written by pseudonym.

``AuditStorage`` is the interface the sink, the insight and the API use; this
module's ``SqliteAuditStore`` is the embedded implementation, and
``advisering.audit.postgres.PostgresAuditStore`` the shared one (chosen by
``open_audit_store`` for a ``postgresql://`` URL). The SQL is portable (``ON
CONFLICT ... DO NOTHING``, TEXT timestamps in one fixed-width UTC form so that
text order is time order), so both use the same statements.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from pydantic import SecretStr

from advisering.engine.notification import AuditRecord
from advisering.privatefiles import open_private_sqlite

if TYPE_CHECKING:
    from advisering.inbox.postgres import PoolLimits

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_disclosures (
    notification_id TEXT PRIMARY KEY,
    citizen TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    received_utc TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_citizen ON audit_disclosures (citizen, created_utc);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_disclosures (created_utc);
CREATE TABLE IF NOT EXISTS audit_lookups (
    id TEXT PRIMARY KEY,
    asked_utc TEXT NOT NULL,
    citizen TEXT NOT NULL,
    via TEXT NOT NULL,
    caseworker TEXT,
    department TEXT,
    unit TEXT,
    jti TEXT,
    disclosures INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lookups_by_citizen ON audit_lookups (citizen, asked_utc);
CREATE INDEX IF NOT EXISTS lookups_by_time ON audit_lookups (asked_utc);
"""


def utc_text(moment: dt.datetime) -> str:
    """A moment as the store writes it: UTC, microseconds, fixed width (text order = time order)."""
    if moment.tzinfo is None:
        raise ValueError("a time without a UTC offset")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def created_utc(record: AuditRecord) -> str:
    """The record's ``created`` in the store's form; ValueError unless an ISO time with offset.

    OverflowError for a time that leaves the calendar in UTC (year 1 or 9999 with an offset).
    """
    return utc_text(dt.datetime.fromisoformat(record.created))


@dataclass(frozen=True, slots=True)
class Lookup:
    """One insight question: who asked (token or operator), about which pseudonym, when."""

    id: str
    asked: dt.datetime
    citizen: str
    via: str
    caseworker: str | None = None
    department: str | None = None
    unit: str | None = None
    jti: str | None = None
    disclosures: int = 0


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pruning deleted."""

    disclosures: int
    lookups: int


class AuditStorage(Protocol):
    """What the sink, the insight and the API need of an audit store (SQLite or PostgreSQL)."""

    def add_many(self, records: Sequence[AuditRecord]) -> int:
        """Store records not stored before (by notification id), in one transaction; how many."""
        ...

    def disclosures(self, citizens: Sequence[str], start: dt.datetime | None,
                    end: dt.datetime | None, limit: int) -> list[AuditRecord]:
        """Records about ``citizens`` created in [start, end), oldest first, ``limit`` at most."""
        ...

    def add_lookup(self, lookup: Lookup) -> None:
        """Record one insight question."""
        ...

    def lookups(self, citizens: Sequence[str]) -> list[Lookup]:
        """The insight questions asked about any of ``citizens``, oldest first."""
        ...

    def prune(self, before: dt.datetime) -> Pruned:
        """Delete disclosures created, and lookups asked, before ``before``."""
        ...

    def close(self) -> None:
        """Close the store."""
        ...


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


LOOKUP_COLUMNS = "id, asked_utc, citizen, via, caseworker, department, unit, jti, disclosures"
"""The columns of ``audit_lookups``, in the order of ``lookup_row`` and ``lookup_of``."""


def disclosure_rows(records: Sequence[AuditRecord]) -> list[tuple[str, str, str, str, str]]:
    """(notification_id, citizen, created_utc, received_utc, record) of each, as both stores insert.

    ValueError (or OverflowError) for a ``created`` that is not a time with an offset.
    """
    received = utc_text(dt.datetime.now(dt.UTC))
    return [(r.notification_id, r.citizen, created_utc(r), received, r.encode().decode())
            for r in records]


def period_where(start: dt.datetime | None, end: dt.datetime | None,
                 mark: str) -> tuple[list[str], list[object]]:
    """The conditions (and parameters) of [start, end) on ``created_utc``; ``mark``: ? or %s."""
    where: list[str] = []
    params: list[object] = []
    if start is not None:
        where.append(f"created_utc >= {mark}")
        params.append(utc_text(start))
    if end is not None:
        where.append(f"created_utc < {mark}")
        params.append(utc_text(end))
    return where, params


def lookup_row(lookup: Lookup) -> tuple[object, ...]:
    """A lookup's values in the order of ``LOOKUP_COLUMNS``."""
    return (lookup.id, utc_text(lookup.asked), lookup.citizen, lookup.via, lookup.caseworker,
            lookup.department, lookup.unit, lookup.jti, lookup.disclosures)


def lookup_of(row: Sequence[Any]) -> Lookup:
    """A lookup from a row of ``LOOKUP_COLUMNS``."""
    return Lookup(row[0], dt.datetime.fromisoformat(row[1]), row[2], row[3], row[4], row[5],
                  row[6], row[7], int(row[8]))


class SqliteAuditStore:
    """The audit store in one SQLite file (WAL: the sink writes while serve reads)."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_private_sqlite(path, SCHEMA)  # 0600 in a 0700 folder, as the inbox
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def add_many(self, records: Sequence[AuditRecord]) -> int:
        """Store records not stored before, in one transaction; returns how many were new.

        The caller commits its Kafka offsets only after this returns, so a
        crash in between gives the batch again and the ids make it harmless.
        """
        rows = disclosure_rows(records)
        new = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    cursor = self._db.execute(
                        "INSERT INTO audit_disclosures (notification_id, citizen, created_utc, "
                        "received_utc, record) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (notification_id) DO NOTHING", row)
                    new += max(cursor.rowcount, 0)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def disclosures(self, citizens: Sequence[str], start: dt.datetime | None,
                    end: dt.datetime | None, limit: int) -> list[AuditRecord]:
        """Records about ``citizens`` (old and new pseudonyms of one person) in [start, end)."""
        if not citizens:
            return []
        period, bounds = period_where(start, end, "?")
        where = [f"citizen IN ({_placeholders(len(citizens))})", *period]
        params = [*citizens, *bounds]
        with self._lock:
            rows = self._db.execute(
                f"SELECT record FROM audit_disclosures WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY created_utc, notification_id LIMIT ?", [*params, limit]).fetchall()
        return [AuditRecord.from_json(orjson.loads(row[0])) for row in rows]

    def add_lookup(self, lookup: Lookup) -> None:
        """Record one insight question (its id is random: a repeat is a new question)."""
        with self._lock:
            self._db.execute(
                f"INSERT INTO audit_lookups ({LOOKUP_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", lookup_row(lookup))

    def lookups(self, citizens: Sequence[str]) -> list[Lookup]:
        """The questions asked about ``citizens``, oldest first (for operators and tests)."""
        if not citizens:
            return []
        with self._lock:
            marks = _placeholders(len(citizens))
            rows = self._db.execute(
                f"SELECT {LOOKUP_COLUMNS} FROM audit_lookups "  # noqa: S608
                f"WHERE citizen IN ({marks}) ORDER BY asked_utc, id", list(citizens)).fetchall()
        return [lookup_of(row) for row in rows]

    def prune(self, before: dt.datetime) -> Pruned:
        """Delete what is older than ``before``, in one transaction."""
        cutoff = utc_text(before)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                disclosures = self._db.execute(
                    "DELETE FROM audit_disclosures WHERE created_utc < ?", (cutoff,)).rowcount
                lookups = self._db.execute(
                    "DELETE FROM audit_lookups WHERE asked_utc < ?", (cutoff,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Pruned(max(disclosures, 0), max(lookups, 0))


def open_audit_store(location: Path | SecretStr, limits: PoolLimits | None = None,
                     ) -> AuditStorage:
    """The audit store at ``location``: a SQLite file, or a PostgreSQL URL (a secret).

    ``limits`` bound the PostgreSQL pool (``ADVISERING_INBOX_PG_*``).
    """
    if isinstance(location, SecretStr):
        from advisering.audit.postgres import PostgresAuditStore  # noqa: PLC0415 - it imports this module

        return PostgresAuditStore(location.get_secret_value(), limits)
    return SqliteAuditStore(location)

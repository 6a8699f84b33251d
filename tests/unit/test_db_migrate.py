"""Versioned schema migrations on both stores, and `advisering db migrate`."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest

from advisering.audit.postgres import AUDIT_MIGRATIONS, AUDIT_VERSIONS, PostgresAuditStore
from advisering.cli.main import main
from advisering.inbox.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Migrated
from tests.pg import open_store


def versions(inbox_db: Path | str, table: str = "schema_version") -> list[int]:
    """The versions the store's schema_version (or the audit's) table records."""
    if isinstance(inbox_db, Path):
        with sqlite3.connect(inbox_db) as db:
            return [r[0] for r in db.execute(f"SELECT version FROM {table} ORDER BY 1")]
    with psycopg.connect(inbox_db) as pg:
        return [r[0] for r in pg.execute(f"SELECT version FROM {table} ORDER BY 1")]


def newest(inbox_db: Path | str) -> int:
    return len(SQLITE_MIGRATIONS if isinstance(inbox_db, Path) else POSTGRES_MIGRATIONS)


def test_db_migrate_applies_once_and_says_so(
    inbox_db: Path | str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The verb migrates an empty store to the newest version, then has nothing to do."""
    if isinstance(inbox_db, str):  # a password in the URL must never be printed
        inbox_db = inbox_db.replace("advisering@", "advisering:hunter2-secret@")
    monkeypatch.setenv("ADVISERING_INBOX_DB", str(inbox_db))
    assert main(["db", "migrate"]) == 0
    assert main(["db", "migrate"]) == 0
    out, err = capsys.readouterr()
    top = newest(inbox_db)
    assert f"schema version 0 -> {top}" in out
    assert f"schema version {top}, nothing to do" in out
    assert "hunter2" not in out + err
    assert versions(inbox_db) == list(range(1, top + 1))
    if isinstance(inbox_db, str):  # the audit store lives in the inbox's database
        audit_top = len(AUDIT_MIGRATIONS)
        assert f"audit store on PostgreSQL: schema version 0 -> {audit_top}" in out
        assert f"audit store on PostgreSQL: schema version {audit_top}, nothing to do" in out
        assert versions(inbox_db, AUDIT_VERSIONS) == list(range(1, audit_top + 1))
    else:
        assert "audit store" not in out


async def test_replicas_opening_together_migrate_once(inbox_db: Path | str) -> None:
    """Several stores opened at once on one database apply each version exactly once."""
    stores = await asyncio.gather(*(open_store(inbox_db) for _ in range(4)))
    try:
        top = newest(inbox_db)
        assert versions(inbox_db) == list(range(1, top + 1))
        for store in stores:
            assert (await store.open()) == Migrated(top, top)  # again: nothing to do
    finally:
        for store in stores:
            await store.close()


async def test_audit_stores_and_the_inbox_opening_together_migrate_once(pg_url: str) -> None:
    """Four sinks or replicas opening the audit store beside the inbox: each version once."""
    audits, inbox = await asyncio.gather(
        asyncio.gather(*(asyncio.to_thread(PostgresAuditStore, pg_url) for _ in range(4))),
        open_store(pg_url))
    try:
        assert versions(pg_url, AUDIT_VERSIONS) == list(range(1, len(AUDIT_MIGRATIONS) + 1))
        assert versions(pg_url) == list(range(1, len(POSTGRES_MIGRATIONS) + 1))
        assert sorted(a.migrated.before for a in audits)[-1] == len(AUDIT_MIGRATIONS)
    finally:
        for audit in audits:
            audit.close()
        await inbox.close()


def test_unreachable_postgresql_is_a_user_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """No server: exit 2 with what failed, and the URL's password appears nowhere."""
    monkeypatch.setenv("ADVISERING_INBOX_DB",
                       "postgresql://advisering:hunter2-secret@127.0.0.1:1/inbox")
    monkeypatch.setenv("ADVISERING_INBOX_PG_POOL_TIMEOUT_SECONDS", "1")
    assert main(["db", "migrate"]) == 2
    out, err = capsys.readouterr()
    assert "cannot be migrated" in err
    assert "hunter2" not in out + err


def test_an_unreachable_audit_database_stops_insight_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """insight with the audit store on an absent server: exit 2, and no password anywhere."""
    monkeypatch.setenv("ADVISERING_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("ADVISERING_AUDIT_DB",
                       "postgresql://audit:hunter2-secret@127.0.0.1:1/audit")
    monkeypatch.setenv("ADVISERING_INBOX_PG_POOL_TIMEOUT_SECONDS", "1")
    assert main(["insight", "--cpr", "0101801234"]) == 2
    out, err = capsys.readouterr()
    assert "the audit store (postgresql) cannot be opened" in err
    assert "hunter2" not in out + err and "0101801234" not in out + err

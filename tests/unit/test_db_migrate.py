"""Versioned schema migrations on both stores, and `advisering db migrate`."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest

from advisering.cli.main import main
from advisering.inbox.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Migrated
from tests.pg import open_store


def versions(inbox_db: Path | str) -> list[int]:
    """The versions the store's schema_version table records."""
    if isinstance(inbox_db, Path):
        with sqlite3.connect(inbox_db) as db:
            return [r[0] for r in db.execute("SELECT version FROM schema_version ORDER BY 1")]
    with psycopg.connect(inbox_db) as pg:
        return [r[0] for r in pg.execute("SELECT version FROM schema_version ORDER BY 1")]


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

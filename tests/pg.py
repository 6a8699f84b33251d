"""PostgreSQL for the tests: a real server, and one fresh database per test.

scripts/test.sh starts a throwaway cluster and exports its URL as
``ADVISERING_TEST_PG_DSN``. Without it this module starts one itself
(``advisering.dev.local_postgres``) when PostgreSQL is installed. With
neither, a test that needs PostgreSQL fails when CI is set and is skipped,
saying why, on a developer's machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiohttp import web
from pydantic import SecretStr

from advisering.audit.store import AuditStorage, open_audit_store
from advisering.dev import local_postgres
from advisering.engine.notification import Notification
from advisering.inbox.service import BROADCAST, STORE
from advisering.inbox.storage import InboxStorage, storage_for
from advisering.settings import Settings

STORES = ("sqlite", "postgresql")


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_database(server: str, database: str) -> str:
    base, _, _ = server.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server the tests may create databases on."""
    given = os.environ.get("ADVISERING_TEST_PG_DSN")
    if given:
        yield given
        return
    if not local_postgres.available():
        reason = ("PostgreSQL is not installed (initdb, pg_ctl): `make test` installs Debian's "
                  "postgresql, or set ADVISERING_TEST_PG_DSN")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = int(os.environ.get("ADVISERING_TEST_PG_PORT") or free_port())
    root = Path(tempfile.mkdtemp(prefix="advisering-test-pg-"))
    root.chmod(0o711)  # as root, the cluster's own user must pass through to its folder
    try:
        url = local_postgres.start(port, root / "cluster")
        yield url
    finally:
        local_postgres.stop(root / "cluster")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A new, empty database of its own for one test; dropped after it."""
    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    yield _with_database(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def _each_store(request: pytest.FixtureRequest, file: Path) -> Path | str:
    """``file`` for the SQLite parameter, a new PostgreSQL database's URL for the other."""
    if request.param == "sqlite":
        return file
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=STORES)
def inbox_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """ADVISERING_INBOX_DB for each store: a SQLite file, then a PostgreSQL database."""
    return _each_store(request, tmp_path / "inbox.sqlite3")


@pytest.fixture(params=STORES)
def audit_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """ADVISERING_AUDIT_DB for each store: a SQLite file, then a PostgreSQL database."""
    return _each_store(request, tmp_path / "audit.sqlite3")


def open_audit(audit_db: Path | str) -> AuditStorage:
    """The audit store ADVISERING_AUDIT_DB names, opened (and migrated) as the sink opens it."""
    return open_audit_store(SecretStr(audit_db) if isinstance(audit_db, str) else audit_db)


def text_in_tables(url: str, tables: tuple[str, ...]) -> str:
    """Every text column of every row of ``tables``, joined: what a scan for a CPR reads."""
    found: list[str] = []
    with psycopg.connect(url) as db:
        for table in tables:
            columns = [row[0] for row in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND data_type IN ('text', 'character varying', 'bytea', 'jsonb', 'json')",
                (table,)).fetchall()]
            assert columns, f"no text columns in {table}"
            for column in columns:
                for (value,) in db.execute(
                        f'SELECT "{column}"::text FROM "{table}"').fetchall():  # type: ignore[arg-type]
                    found.append(str(value))
    return "\n".join(found)


async def open_store(inbox_db: Path | str) -> InboxStorage:
    """The store ADVISERING_INBOX_DB names, opened (and migrated) as serve opens it."""
    store = storage_for(Settings(inbox_db=inbox_db))
    await store.open()
    return store


async def store_and_publish(app: web.Application, notes: list[Notification]) -> list[Notification]:
    """Store as the consumer does and reach the live streams as serve does for that store.

    SQLite: the consumer hands the new ones to the streams. PostgreSQL: they
    come back through LISTEN/NOTIFY (``follow``), as another replica's would.
    """
    new = await app[STORE].add_many(notes)
    if not app[STORE].shared:
        app[BROADCAST].publish(new)
    return new

"""The inbox database and its folder are private to the service's user (0600 / 0700)."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from advisering.engine.notification import Notification
from advisering.inbox.store import InboxStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The loosest umask a deployment could have: modes must not depend on it."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def note() -> Notification:
    created = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC).isoformat()
    return Notification.from_json({
        "id": "n-1", "rule": "r", "title": "t", "severity": "high",
        "recipient": {"caseworker": "bf-0042", "unit": "bf-syd", "department": "boern-familie"},
        "related_case": {"id": "DUBU-1", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": "e1", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": created},
        "citizen": "ps1-" + "a" * 52, "message": "m", "legal_basis": "l", "created": created,
    })


def test_new_database_folder_and_wal_files_are_private(tmp_path: Path) -> None:
    """Created under umask 0: each new folder is 0700; database, WAL and SHM files are 0600."""
    path = tmp_path / "var" / "advisering" / "inbox.sqlite3"
    store = InboxStore(path)
    try:
        store.add_many([note()])
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["inbox.sqlite3", "inbox.sqlite3-shm", "inbox.sqlite3-wal"]
        for name in files:
            assert mode(path.parent / name) == 0o600, name
    finally:
        store.close()
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700


def test_existing_database_is_narrowed_and_existing_folder_left_alone(tmp_path: Path) -> None:
    """A database left 0644 by an older version becomes 0600; a shared folder keeps its mode."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    path = shared / "inbox.sqlite3"
    InboxStore(path).close()
    path.chmod(0o644)
    store = InboxStore(path)
    try:
        assert mode(path) == 0o600
        assert mode(path.with_name("inbox.sqlite3-wal")) == 0o600
    finally:
        store.close()
    assert mode(shared) == 0o755

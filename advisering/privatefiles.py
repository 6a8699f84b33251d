"""Files only the service's own user may read: the inbox database and its folder.

The inbox holds notifications about citizens, so its SQLite files are 0600
and a folder created for them 0700, whatever the process's umask. Modes are
set right after creation (``os.open`` with the mode, then ``chmod``, because
a umask can only narrow a mode and an existing file keeps its old one). A
folder that already existed is left as it is: it may be shared (``/var/lib``,
a volume), and the files in it are private anyway. SQLite creates the WAL
and shared-memory files with the database file's own permissions, so they
are 0600 too; ``tighten`` also narrows any left by an older version.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parents, each 0700; an existing one is left alone."""
    missing = [folder, *folder.parents]
    missing = [p for p in missing if not p.exists()]
    for created in reversed(missing):
        created.mkdir(mode=FOLDER_MODE, exist_ok=True)
        os.chmod(created, FOLDER_MODE)


def private_database(path: Path) -> None:
    """Create the database file 0600 (and its folder 0700) before SQLite opens it."""
    private_folder(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    tighten(path)


def tighten(path: Path) -> None:
    """Narrow the database's WAL, shared-memory and journal files to 0600 where they exist."""
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.chmod(companion, FILE_MODE)


def open_private_sqlite(path: Path | str, schema: str) -> sqlite3.Connection:
    """A private (0600) SQLite database in WAL mode with full sync, ``schema`` applied.

    Autocommit (``isolation_level=None``: callers write BEGIN themselves), shareable
    between threads (callers serialise with a lock), waiting up to 30 s for another
    process's write lock. A ``str`` is passed as it is (``:memory:``, URIs).
    """
    if isinstance(path, Path):
        private_database(path)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    if isinstance(path, Path):
        tighten(path)
    return db

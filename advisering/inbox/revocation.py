"""Revoked caseworker tokens, by ``jti``: a JSON-lines file serve rereads without a restart.

``advisering token revoke JTI`` appends ``{"jti", "revoked_at", "reason"}``
to the file (0600 in a 0700 folder: advisering.privatefiles), under an
exclusive lock so two operators cannot interleave lines. Serve asks
``RevocationList.refresh()`` per request and every
``ADVISERING_TOKEN_REVOCATION_CHECK_SECONDS`` from a background task; only
when the file's stat (mtime in ns, size, inode) changed is it read again.
A file larger than ``ADVISERING_TOKEN_REVOCATION_MAX_BYTES``, with more
than ``ADVISERING_TOKEN_REVOCATION_MAX_ENTRIES`` ids, with a line that is
not a revocation, or gone, keeps the last good list in force and logs
``token_revocations_invalid``: a damaged file must not un-revoke anyone.

A revoked token stays refused until it expires anyway; an operator may
remove lines of tokens long expired (their ``exp`` is at most
``ADVISERING_TOKEN_MAX_LIFETIME_SECONDS`` after issue).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from advisering import metrics
from advisering.filechanges import Signature, file_signature
from advisering.log import get_logger
from advisering.privatefiles import FILE_MODE, private_folder
from advisering.settings_store import default_cache_dir

log = get_logger(__name__)

_JTI = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_REASON = 200
DEFAULT_FILE_NAME = "token-revocations.jsonl"



class RevocationFileError(ValueError):
    """The revocation file cannot be read or written as it is (too large, malformed, full)."""


def revocation_file(configured: Path | None, inbox_db: Path | None) -> Path:
    """ADVISERING_TOKEN_REVOCATION_FILE, or ``token-revocations.jsonl`` beside the SQLite inbox.

    With the inbox on PostgreSQL (``inbox_db`` None) the default is in
    ``~/.cache/advisering``; replicas must then be given one shared file.
    """
    if configured is not None:
        return configured
    folder = inbox_db.parent if inbox_db is not None else default_cache_dir()
    return folder / DEFAULT_FILE_NAME


def parse(data: bytes, *, max_entries: int) -> frozenset[str]:
    """The revoked ids in a file's content; RevocationFileError naming the first bad line."""
    revoked: set[str] = set()
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise RevocationFileError(f"line {number} is not JSON") from None
        jti = entry.get("jti") if isinstance(entry, dict) else None
        if not isinstance(jti, str) or not _JTI.match(jti):
            raise RevocationFileError(f"line {number} has no valid jti")
        revoked.add(jti)
        if len(revoked) > max_entries:
            raise RevocationFileError(
                f"more than {max_entries} revoked ids (ADVISERING_TOKEN_REVOCATION_MAX_ENTRIES)")
    return frozenset(revoked)


def _read(path: Path, max_bytes: int) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RevocationFileError(
            f"larger than {max_bytes} bytes (ADVISERING_TOKEN_REVOCATION_MAX_BYTES)")
    return data


def revoke(path: Path, jti: str, reason: str | None, *, max_bytes: int, max_entries: int,
           now: dt.datetime | None = None) -> bool:
    """Append ``jti`` to the file; False when it was revoked already.

    RevocationFileError when the id or reason is invalid, or the file would
    exceed its limits (serve would refuse it and keep the previous list).
    """
    if not _JTI.match(jti):
        raise RevocationFileError(f"{jti[:40]!r} is not a token id (jti)")
    if reason is not None and (len(reason) > MAX_REASON or not reason.isprintable()):
        raise RevocationFileError(f"the reason is at most {MAX_REASON} printable characters")
    moment = now or dt.datetime.now(dt.UTC)
    line = orjson.dumps({"jti": jti, "revoked_at": moment.isoformat(timespec="seconds"),
                         "reason": reason}) + b"\n"
    private_folder(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as reader:
            data = reader.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise RevocationFileError(f"{path} is larger than {max_bytes} bytes already")
        revoked = parse(data, max_entries=max_entries)
        if jti in revoked:
            return False
        if len(revoked) + 1 > max_entries or len(data) + len(line) > max_bytes:
            raise RevocationFileError(
                f"{path} is full ({len(revoked)} ids, {len(data)} bytes): remove the lines "
                "of tokens that have expired, or raise ADVISERING_TOKEN_REVOCATION_MAX_*")
        if data and not data.endswith(b"\n"):
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    return True


class RevocationList:
    """The revoked ids in force, reread within ``interval`` seconds of a change of the file.

    ``on_revoked`` is told the ids that became revoked with each reload, so
    serve can close the live streams of those tokens at once.
    """

    def __init__(self, path: Path, *, max_bytes: int, max_entries: int, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.max_bytes, self.max_entries = path, max_bytes, max_entries
        self.interval = interval
        self._clock = clock
        self._revoked: frozenset[str] = frozenset()
        self._signature: Signature = None
        self._checked = float("-inf")
        self.on_revoked: list[Callable[[frozenset[str]], None]] = []
        self.refresh(force=True)

    def __contains__(self, jti: object) -> bool:
        return jti in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def refresh(self, *, force: bool = False) -> frozenset[str]:
        """The ids in force: the file is reread first when it changed (within the interval)."""
        now = self._clock()
        if not force and now - self._checked < self.interval:
            return self._revoked
        self._checked = now
        signature = file_signature(self.path)
        if signature == self._signature:
            return self._revoked
        previous, self._signature = self._signature, signature
        try:
            if signature is None:
                if previous is None:
                    return self._revoked  # never written: nothing revoked yet
                raise RevocationFileError("the file is gone")
            revoked = parse(_read(self.path, self.max_bytes), max_entries=self.max_entries)
        except (OSError, RevocationFileError) as exc:
            metrics.TOKEN_REVOCATION_RELOADS.labels("rejected").inc()
            log.error("token_revocations_invalid", file=str(self.path), problem=str(exc)[:200],
                      kept=len(self._revoked))
            return self._revoked
        added = revoked - self._revoked
        self._revoked = revoked
        metrics.TOKEN_REVOCATION_RELOADS.labels("loaded").inc()
        log.info("token_revocations_loaded", file=str(self.path), revoked=len(self._revoked),
                 added=len(added))
        if added:
            for listener in self.on_revoked:
                listener(added)
        return self._revoked

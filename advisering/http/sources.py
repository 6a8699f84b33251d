"""Source systems: their API keys (hashed), their grants, and changes without restarts.

The sources file (``ADVISERING_SOURCES_FILE``, YAML, schema below) is the
one place that says which source systems exist, how each proves who it is
over HTTP (the SHA-256 of its API key) and what it may publish (its
:class:`~advisering.grants.Grants`). ``serve`` and the worker read it, and
pick up changes within ``ADVISERING_SOURCES_RELOAD_SECONDS`` (see
:class:`ReloadingSources`), so a rotation, a revocation or a new grant needs
no restart.

Keys are 256 random bits, so a plain hash (no slow KDF) is safe and keeps
authentication cheap on every request. ``sources add --rotate`` keeps the old
key valid for a grace period (``previous_keys`` with an expiry) so a source
system can switch without downtime; ``sources revoke`` removes a source and
all its keys at once. Every change is a read-modify-write under a lock file
(``fcntl``), written to a temporary file (mode 0600) and renamed over the old
one, so readers see the old or the new file and two CLI runs lose nothing.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from advisering.events import Vocabulary
from advisering.grants import Grants, vocabulary_problems
from advisering.yamlfiles import FileProblem, YamlFileError, problems_from_validation

KEY_PREFIX = "adv_"
NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
MAX_PRESENTED_KEY = 256  # ours are 47 characters; anything longer is not one of them
MAX_PREVIOUS_KEYS = 8
_HEADER = ("# advisering: source systems, the SHA-256 of their API keys and their grants.\n"
           "# Written by `advisering sources ...`; serve and the worker reload it on change.\n")


def utc_now() -> dt.datetime:
    """The aware UTC time that key expiries and ages are compared with."""
    return dt.datetime.now(dt.UTC)


class PreviousKey(BaseModel):
    """A rotated-out key, still accepted until ``expires`` (the rotation's grace)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    expires: AwareDatetime


class SourceEntry(BaseModel):
    """One source system: its current key's hash, when that key was made, its grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: dt.datetime  # when the current key was made (the key's age)
    description: str | None = Field(default=None, max_length=500)
    # None (no grants in the file): the source is granted nothing, so a missing
    # entry can never widen what a source may publish.
    grants: Grants | None = None
    previous_keys: tuple[PreviousKey, ...] = Field(default=(), max_length=MAX_PREVIOUS_KEYS)

    def key_age(self, now: dt.datetime) -> dt.timedelta:
        """How old the current key is at ``now`` (a naive ``created`` is read as UTC)."""
        created = self.created if self.created.tzinfo else self.created.replace(tzinfo=dt.UTC)
        return now - created

    def pending(self, now: dt.datetime) -> tuple[PreviousKey, ...]:
        """The previous keys still valid at ``now``."""
        return tuple(key for key in self.previous_keys if key.expires > now)


class SourcesFile(BaseModel):
    """The sources file: source name -> its key hashes and grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[str, SourceEntry] = {}

    @field_validator("sources")
    @classmethod
    def _names_and_unique_keys(cls, value: dict[str, SourceEntry]) -> dict[str, SourceEntry]:
        owner: dict[str, str] = {}
        for name, entry in value.items():
            if not re.fullmatch(NAME_PATTERN, name):
                raise ValueError(f"source name {name!r} must be lower-case letters, digits, "
                                 ". _ or - (at most 64)")
            for digest in (entry.key_sha256, *(k.key_sha256 for k in entry.previous_keys)):
                if owner.setdefault(digest, name) != name:
                    raise ValueError(f"sources {owner[digest]!r} and {name!r} share a key")
        return value


def hash_key(key: str) -> str:
    """The SHA-256 hex digest the sources file keeps instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key with the recognisable prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def load_sources(path: Path, vocabulary: Vocabulary | None = None) -> SourcesFile:
    """The registered sources; an absent file means none.

    With ``vocabulary`` every grant is also checked against it (unknown event
    types and departments are errors naming the file and the source).
    """
    if not path.exists():
        return SourcesFile()
    from advisering.yamlfiles import read_yaml_document  # noqa: PLC0415

    document = read_yaml_document(path)
    try:
        sources = SourcesFile.model_validate(document.value or {})
    except ValidationError as exc:
        problems = problems_from_validation(path, exc, lines=document, model=SourcesFile)
        raise YamlFileError([_with_source(p) for p in problems]) from exc
    if vocabulary is not None:
        problems = [
            FileProblem(path, f"sources.{name}.grants.{where}", message,
                        document.line_of_dotted(f"sources.{name}.grants.{where}"), item=name)
            for name, entry in sources.sources.items() if entry.grants is not None
            for where, message in vocabulary_problems(entry.grants, vocabulary)
        ]
        if problems:
            raise YamlFileError(problems)
    return sources


def _with_source(problem: FileProblem) -> FileProblem:
    """Name the source a problem is in (``sources.<name>.…``) as the problem's item."""
    parts = problem.path.split(".")
    if len(parts) > 1 and parts[0] == "sources":
        return replace(problem, item=parts[1])
    return problem


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock for one read-modify-write of the sources file (a sibling lock file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write(path: Path, sources: dict[str, SourceEntry], now: dt.datetime) -> None:
    """Write atomically (temporary file, mode 0600, fsync, rename); expired keys are dropped."""
    entries: dict[str, Any] = {}
    for name, entry in sorted(sources.items()):
        dumped = entry.model_dump(mode="json", exclude_none=True)
        dumped["previous_keys"] = [k.model_dump(mode="json") for k in entry.pending(now)]
        if not dumped["previous_keys"]:
            del dumped["previous_keys"]
        entries[name] = dumped
    document = {"sources": entries}
    SourcesFile.model_validate(document)  # never write what could not be read back
    text = _HEADER + yaml.safe_dump(document, sort_keys=True, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_grants(grants: Grants, vocabulary: Vocabulary | None) -> None:
    problems = vocabulary_problems(grants, vocabulary or Vocabulary())
    if problems:
        raise ValueError("; ".join(f"{where}: {message}" for where, message in problems))


def _check_name(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"source name {name!r} must be lower-case letters, digits, . _ or -")


def add_source(path: Path, name: str, grants: Grants, *, description: str | None = None,
               vocabulary: Vocabulary | None = None, now: dt.datetime | None = None) -> str:
    """Register ``name`` with a new key and its grants; returns the key (the only time shown).

    ``vocabulary`` (default: the core one) checks the grants' types and departments.
    """
    _check_name(name)
    _check_grants(grants, vocabulary)
    now = now or utc_now()
    key = new_key()
    with _locked(path):
        sources = dict(load_sources(path).sources)
        if name in sources:
            raise ValueError(f"source {name!r} exists already; use --rotate for a new key "
                             "or `sources grant` to change what it may publish")
        sources[name] = SourceEntry(key_sha256=hash_key(key), created=now,
                                    description=description, grants=grants)
        _write(path, sources, now)
    return key


def rotate_key(path: Path, name: str, *, grace: dt.timedelta,
               grants: Grants | None = None, vocabulary: Vocabulary | None = None,
               now: dt.datetime | None = None) -> str:
    """A new key for ``name``; its current key stays valid for ``grace`` (0: not at all)."""
    if grants is not None:
        _check_grants(grants, vocabulary)
    now = now or utc_now()
    key = new_key()
    with _locked(path):
        sources = dict(load_sources(path).sources)
        entry = _existing(sources, name)
        previous = entry.pending(now)
        if grace > dt.timedelta(0):
            previous = (*previous, PreviousKey(key_sha256=entry.key_sha256, expires=now + grace))
        sources[name] = entry.model_copy(update={
            "key_sha256": hash_key(key), "created": now,
            "previous_keys": previous[-MAX_PREVIOUS_KEYS:],
            "grants": grants if grants is not None else entry.grants,
        })
        _write(path, sources, now)
    return key


def set_grants(path: Path, name: str, grants: Grants, *,
               vocabulary: Vocabulary | None = None, now: dt.datetime | None = None) -> None:
    """Replace what ``name`` may publish; its keys stay as they are."""
    _check_grants(grants, vocabulary)
    with _locked(path):
        sources = dict(load_sources(path).sources)
        sources[name] = _existing(sources, name).model_copy(update={"grants": grants})
        _write(path, sources, now or utc_now())


def revoke_source(path: Path, name: str, *, now: dt.datetime | None = None) -> None:
    """Remove ``name`` and every key it has (also those in a rotation's grace)."""
    with _locked(path):
        sources = dict(load_sources(path).sources)
        _existing(sources, name)
        del sources[name]
        _write(path, sources, now or utc_now())


def _existing(sources: dict[str, SourceEntry], name: str) -> SourceEntry:
    if name not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise ValueError(f"no source {name!r} is registered (registered: {known})")
    return sources[name]


class SourceAuthenticator:
    """Finds the source a presented API key belongs to, comparing every hash in constant time.

    Each source's current key and its previous keys (until they expire) are
    accepted; every stored hash is compared, match or not, so the time an
    answer takes says nothing about which key was close.
    """

    def __init__(self, sources: SourcesFile) -> None:
        self._hashes: list[tuple[str, bytes, dt.datetime | None]] = []
        for name, entry in sources.sources.items():
            self._hashes.append((name, bytes.fromhex(entry.key_sha256), None))
            self._hashes += [(name, bytes.fromhex(old.key_sha256), old.expires)
                             for old in entry.previous_keys]

    def source_for(self, key: str | None, now: dt.datetime | None = None) -> str | None:
        """The source whose current or still-valid previous key this is (None: no source)."""
        if not key or len(key) > MAX_PRESENTED_KEY:
            return None
        presented = hashlib.sha256(key.encode("utf-8", "replace")).digest()
        at = now or utc_now()
        found = None
        for name, stored, expires in self._hashes:
            if hmac.compare_digest(presented, stored) and (expires is None or at < expires):
                found = name
        return found


@dataclass(frozen=True)
class SourceRow:
    """What `sources list` shows of one source; never a key or its hash."""

    name: str
    grants: Grants | None
    key_age: dt.timedelta
    pending: tuple[dt.datetime, ...]  # expiries of previous keys still valid
    description: str | None


def describe(sources: SourcesFile, now: dt.datetime) -> list[SourceRow]:
    """What `sources list` shows per source: grants, key age, pending rotations; never a key."""
    return [SourceRow(name, entry.grants, entry.key_age(now),
                      tuple(key.expires for key in entry.pending(now)), entry.description)
            for name, entry in sorted(sources.sources.items())]


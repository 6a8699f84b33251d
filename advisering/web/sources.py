"""Source systems allowed to publish over HTTP, each with its own API key.

The keys are stored as SHA-256 hashes in a YAML file (``ADVISERING_SOURCES_FILE``,
schema below); a key is shown once, when ``advisering sources add NAME`` makes
it. Keys are 256 random bits, so a plain hash (no slow KDF) is safe and keeps
authentication cheap on every request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from advisering.yamlfiles import YamlFileError, problems_from_validation, read_yaml

KEY_PREFIX = "adv_"


class SourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: dt.datetime
    description: str | None = None


class SourcesFile(BaseModel):
    """The sources file: source name -> hashed key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[str, SourceEntry] = {}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_sources(path: Path) -> SourcesFile:
    """The registered sources; an absent file means none."""
    if not path.exists():
        return SourcesFile()
    raw = read_yaml(path) or {}
    try:
        return SourcesFile.model_validate(raw)
    except ValidationError as exc:
        raise YamlFileError(problems_from_validation(path, exc)) from exc


def add_source(path: Path, name: str, description: str | None = None,
               *, replace: bool = False) -> str:
    """Register ``name`` with a new key and return the key (the only time it is shown)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name):
        raise ValueError(f"source name {name!r} must be lower-case letters, digits, . _ or -")
    current = load_sources(path)
    if name in current.sources and not replace:
        raise ValueError(f"source {name!r} exists already; use --rotate to give it a new key")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = SourceEntry(key_sha256=hash_key(key), created=dt.datetime.now(dt.UTC),
                        description=description)
    sources = dict(current.sources)
    sources[name] = entry
    document = {"sources": {n: e.model_dump(mode="json", exclude_none=True)
                            for n, e in sorted(sources.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# advisering HTTP ingest: source systems and their hashed API keys\n"
                   + yaml.safe_dump(document, sort_keys=True, allow_unicode=True))
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


class SourceAuthenticator:
    """Finds the source a presented API key belongs to, in constant time per source."""

    def __init__(self, sources: SourcesFile) -> None:
        self._hashes = [(name, bytes.fromhex(e.key_sha256)) for name, e in sources.sources.items()]

    def source_for(self, key: str | None) -> str | None:
        if not key:
            return None
        presented = hashlib.sha256(key.encode()).digest()
        found = None
        for name, stored in self._hashes:
            if hmac.compare_digest(presented, stored):
                found = name
        return found

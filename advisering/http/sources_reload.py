"""The sources file as serve and the worker see it: reloaded when it changes, no restart.

``current()`` is asked per request (serve) and per batch (worker). At most
every ``ADVISERING_SOURCES_RELOAD_SECONDS`` it stats the file; only when the
stat (mtime in ns, size, inode) differs is the file read and validated
again. The CLI replaces the file by rename, so the inode changes with every
write even within one mtime tick. A file that fails to load (invalid YAML, a
schema error, an unknown type in a grant, the file gone) leaves the last
good configuration in force, logs ``sources_file_invalid`` and counts
``advisering_sources_reloads_total{outcome="invalid"}``: a typo must not
lock every source out, nor let anyone in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advisering import metrics
from advisering.events import Vocabulary
from advisering.filechanges import file_signature
from advisering.grants import GrantCheck
from advisering.http.sources import SourceAuthenticator, SourcesFile, load_sources
from advisering.log import get_logger
from advisering.privacy import redact
from advisering.yamlfiles import FileProblem, YamlFileError

log = get_logger(__name__)



@dataclass(frozen=True)
class SourcesConfig:
    """One loaded sources file: who a key belongs to, and what each source may publish."""

    sources: SourcesFile
    authenticator: SourceAuthenticator
    grants: GrantCheck

    @classmethod
    def of(cls, sources: SourcesFile) -> SourcesConfig:
        """The authenticator and grant check built from one sources file."""
        return cls(sources, SourceAuthenticator(sources),
                   GrantCheck({name: e.grants for name, e in sources.sources.items()}))


class ReloadingSources:
    """The sources file, reloaded within ``interval`` seconds of a change.

    ``required`` (the worker): the file must exist at start, since without it
    every event would be ``unknown_source``. Without it (serve) an absent
    file means no sources yet, and is picked up once it is written. A file
    that exists but does not load is an error at start either way.
    """

    def __init__(self, path: Path, vocabulary: Vocabulary, *, interval: float,
                 required: bool, setting: str = "ADVISERING_SOURCES_FILE",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.vocabulary = vocabulary
        self.interval = interval
        self._clock = clock
        self._signature = file_signature(path)
        if self._signature is None:
            if required:
                raise YamlFileError([FileProblem(
                    path, "", f"does not exist ({setting}). The worker checks every event's "
                    "source and grants against it; register the source systems with "
                    "`advisering sources add NAME --types ... --departments ...`")])
            log.warning("sources_file_missing", file=str(path))
        self._config = SourcesConfig.of(load_sources(path, vocabulary))
        self._checked = clock()

    def current(self) -> SourcesConfig:
        """The configuration in force: reloaded first if the file changed."""
        now = self._clock()
        if now - self._checked < self.interval:
            return self._config
        self._checked = now
        signature = file_signature(self.path)
        if signature == self._signature:
            return self._config
        self._signature = signature
        try:
            if signature is None:
                raise YamlFileError([FileProblem(self.path, "", "the file is gone")])
            config = SourcesConfig.of(load_sources(self.path, self.vocabulary))
        except YamlFileError as exc:
            metrics.SOURCES_RELOADS.labels("invalid").inc()
            log.error("sources_file_invalid", file=str(self.path), problems=len(exc.problems),
                      first=redact(str(exc.problems[0]))[:300] if exc.problems else "",
                      kept_sources=len(self._config.sources.sources))
            return self._config
        metrics.SOURCES_RELOADS.labels("reloaded").inc()
        log.info("sources_file_reloaded", file=str(self.path),
                 sources=len(config.sources.sources))
        self._config = config
        return config

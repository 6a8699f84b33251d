"""Sending a simulated municipality somewhere: a JSON-lines file, Kafka, or the HTTP ingest.

Live publishing keeps a steady rate (events per second) and sends in small
batches; the HTTP sender groups each batch by source system, authenticates
with that source's key and honours ``Retry-After`` when Kafka is away.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from advisering.events import Vocabulary
from advisering.log import get_logger

log = get_logger(__name__)


def batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """The events in lists of ``size`` (the last one shorter), without reading ahead."""
    iterator = iter(events)
    while batch := list(islice(iterator, size)):
        yield batch


class Pacer:
    """Sleeps so that ``rate`` events per second are not exceeded (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.began = time.monotonic()
        self.sent = 0

    def wait(self, count: int) -> None:
        """Count ``count`` more events sent, and sleep until the rate allows them."""
        self.sent += count
        if self.rate <= 0:
            return
        due = self.began + self.sent / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def write_jsonl(events: Iterable[dict[str, Any]], out: BinaryIO) -> int:
    """Write one event per line to ``out``; returns how many."""
    count = 0
    for event in events:
        out.write(orjson.dumps(event) + b"\n")
        count += 1
    return count


class HttpSender:
    """Posts events to ``advisering serve`` as the source systems would."""

    def __init__(self, url: str, keys: dict[str, str], timeout: float = 60.0,
                 max_retries: int = 10) -> None:
        self.url = url.rstrip("/") + "/api/v1/events"
        self.keys = keys
        self.timeout = timeout
        self.max_retries = max_retries

    def send(self, events: list[dict[str, Any]]) -> int:
        """Send a batch, one request per source; returns the number accepted."""
        by_source: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_source.setdefault(event["source"], []).append(event)
        accepted = 0
        for source, batch in by_source.items():
            key = self.keys.get(source)
            if key is None:
                raise KeyError(f"no API key for source {source!r}")
            accepted += self._post(batch, key)
        return accepted

    def _post(self, batch: list[dict[str, Any]], key: str) -> int:
        body = orjson.dumps(batch)
        for attempt in range(self.max_retries):
            request = urllib.request.Request(  # noqa: S310 - the operator's own ingest URL
                self.url, data=body, method="POST",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310
                    return int(orjson.loads(reply.read())["accepted"])
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    detail = exc.read()[:500].decode(errors="replace")
                    raise RuntimeError(f"ingest refused the batch ({exc.code}): {detail}") from exc
                delay = float(exc.headers.get("Retry-After", "5"))
            except (urllib.error.URLError, TimeoutError, ConnectionError,
                    http.client.HTTPException) as exc:
                # serve restarting drops the connection mid-response (RemoteDisconnected):
                # not acknowledged, so the same ids are sent again
                delay = min(2.0 ** attempt, 10.0)
                log.warning("ingest_unreachable", attempt=attempt, error=str(exc)[:200])
            time.sleep(delay)
        raise RuntimeError(f"ingest did not accept the batch after {self.max_retries} tries")


def register_sources(sources_file: Path, keys_file: Path, vocabulary: Vocabulary,
                     grace: dt.timedelta) -> tuple[list[str], list[str]]:
    """Register every simulated source system with its grants; write their keys for --api-keys.

    A source already registered gets a new key (its old one stays valid for
    ``grace``), so the keys file is complete. Returns (added, rotated).
    """
    from advisering.dev.simulator import source_grants  # noqa: PLC0415
    from advisering.http.sources import add_source, load_sources, rotate_key  # noqa: PLC0415

    existing = load_sources(sources_file).sources
    keys: dict[str, str] = {}
    added: list[str] = []
    rotated: list[str] = []
    for name, grants in sorted(source_grants().items()):
        if name in existing:
            keys[name] = rotate_key(sources_file, name, grace=grace, grants=grants,
                                    vocabulary=vocabulary)
            rotated.append(name)
        else:
            keys[name] = add_source(sources_file, name, grants, description="simulator",
                                    vocabulary=vocabulary)
            added.append(name)
    import yaml  # noqa: PLC0415

    fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# API keys of the simulated source systems (advisering simulate "
                     "--api-keys)\n" + yaml.safe_dump(keys, sort_keys=True))
    return added, rotated


def load_api_keys(path: Path) -> dict[str, str]:
    """A YAML or JSON mapping of source name to API key."""
    import yaml  # noqa: PLC0415

    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ValueError(f"{path}: expected a mapping of source name to API key")
    return {str(k): v for k, v in raw.items()}

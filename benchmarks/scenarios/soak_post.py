"""The soak's load: simulated events posted to `advisering serve` at a steady rate.

Every ``window`` seconds the events due by then (rate x elapsed, less those
already taken) are taken from the simulator, grouped by source system (an API
key is per source) and posted, one request per source, without waiting for
earlier requests: a slow answer does not slow the schedule. A 202 records the
time it arrived for every event id in the request (the publish side of the
latency). A 503 (Kafka away) or no answer is retried with the same events
(the same ids), as a source system would; anything else is a refusal and is
counted as failed, never dropped quietly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import aiohttp
import orjson


@dataclass
class PostTally:
    """What the poster did so far (read by the sampler; ints and Counters, GIL-safe enough)."""

    taken: int = 0  # events taken from the simulator and handed to a request
    acked: int = 0
    failed: int = 0
    retries: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)  # 0: no HTTP answer
    errors: list[str] = field(default_factory=list)
    ran_out: bool = False  # the simulator had no more events
    behind: int = 0  # most requests waiting for a free connection at once


class Poster:
    """Posts ``events`` at ``rate``/s for ``duration`` s from a thread of its own."""

    def __init__(self, url: str, keys: dict[str, str], events: Iterator[dict[str, Any]],
                 rate: float, duration: float, *, window: float = 0.1,
                 concurrency: int = 64, request_timeout: float = 60.0, tries: int = 6) -> None:
        self.url = url.rstrip("/") + "/api/v1/events"
        self.keys = keys
        self.events = events
        self.rate = rate
        self.duration = duration
        self.window = window
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.tries = tries
        self.tally = PostTally()
        self.acks: dict[str, float] = {}  # event id -> wall-clock time its 202 arrived
        self.began: float | None = None  # wall-clock time posting began
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-poster", daemon=True)
        self._waiting = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Post nothing new; requests already sent finish (or time out)."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; True when it finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - reported by the sampler, never swallowed
            self.tally.errors.append(f"poster crashed: {type(exc).__name__}: {exc}")

    async def _main(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        pending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.began = time.time()
            start = time.monotonic()
            while not self._stop.is_set():
                elapsed = time.monotonic() - start
                if elapsed >= self.duration:
                    break
                due = int(min(elapsed, self.duration) * self.rate) - self.tally.taken
                batch = list(islice(self.events, max(due, 0)))
                if due > 0 and not batch:
                    self.tally.ran_out = True
                    break
                self.tally.taken += len(batch)
                for source, events in by_source(batch).items():
                    task = asyncio.create_task(self._post(session, source, events))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                await asyncio.sleep(self.window - (time.monotonic() - start) % self.window)
            if pending:
                await asyncio.wait(pending, timeout=self.request_timeout * self.tries)

    async def _post(self, session: aiohttp.ClientSession, source: str,
                    events: list[dict[str, Any]]) -> None:
        key = self.keys.get(source)
        if key is None:
            self._fail(len(events), f"no API key for source {source!r}")
            return
        body = orjson.dumps(events)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self._waiting += 1
        self.tally.behind = max(self.tally.behind, self._waiting)
        try:
            for attempt in range(self.tries):
                if attempt:
                    self.tally.retries += 1
                status, delay, detail = await self._once(session, body, headers)
                self.tally.statuses[status] += 1
                if status == 202:
                    arrived = time.time()
                    for event in events:
                        self.acks[str(event["id"])] = arrived
                    self.tally.acked += len(events)
                    return
                if status not in (0, 503):
                    self._fail(len(events), f"{status}: {detail}")
                    return
                await asyncio.sleep(delay if delay is not None else min(2.0 ** attempt, 10.0))
            self._fail(len(events), f"no 202 after {self.tries} tries (last: {detail})")
        finally:
            self._waiting -= 1

    async def _once(self, session: aiohttp.ClientSession, body: bytes,
                    headers: dict[str, str]) -> tuple[int, float | None, str]:
        """(status or 0 for no answer, Retry-After seconds if given, a short detail)."""
        self.tally.requests += 1
        try:
            async with session.post(self.url, data=body, headers=headers) as response:
                text = await response.read()
                retry_after = response.headers.get("Retry-After")
                delay = float(retry_after) if retry_after and retry_after.isdigit() else None
                return response.status, delay, text[:300].decode(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 0, None, f"{type(exc).__name__}: {exc}"

    def _fail(self, count: int, detail: str) -> None:
        self.tally.failed += count
        if len(self.tally.errors) < 20:
            self.tally.errors.append(detail)


def by_source(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The events grouped by their source system, in order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(str(event["source"]), []).append(event)
    return grouped

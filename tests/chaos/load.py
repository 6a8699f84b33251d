"""The chaos load: clients posting their requests through `serve`, re-sending until acknowledged.

A client re-sends the same request (the same event ids) after a 503 (Kafka
could not confirm in time: it honours ``Retry-After``, capped) or a lost
connection (serve restarting, a reset, a timeout), and only then goes on to
its next request, as the ingest's contract asks of a source system. Any other
answer is a broken workload or a bug, and stops the client with the answer
kept. What was acknowledged (202) is remembered, with when.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import orjson

from tests.chaos.workload import Request


@dataclass
class Acks:
    """Event ids the ingest acknowledged, and when each acknowledgement came (monotonic)."""

    ids: set[str] = field(default_factory=set)
    times: list[float] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)  # why a request was re-sent, counted
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ids: list[str]) -> None:
        with self.lock:
            self.ids.update(ids)
            self.times.append(time.monotonic())

    def retried(self, why: str) -> None:
        with self.lock:
            self.retries[why] = self.retries.get(why, 0) + 1

    def count(self) -> int:
        with self.lock:
            return len(self.ids)

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time without an acknowledgement between ``since`` and ``until``."""
        with self.lock:
            times = [since, *(t for t in self.times if since < t < until), until]
        return max(b - a for a, b in itertools.pairwise(times))


@dataclass
class Pace:
    """A shared rate for all clients (events/s); 0 lifts it, to finish once the faults are done."""

    rate: float
    began: float = field(default_factory=time.monotonic)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, count: int) -> None:
        with self.lock:
            self.sent += count
            due = self.began + self.sent / self.rate if self.rate > 0 else 0.0
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 1.0))

    def lift(self) -> None:
        with self.lock:
            self.rate = 0.0


class Client(threading.Thread):
    """Posts one client's requests in order; each until it is acknowledged."""

    def __init__(self, url: str, keys: dict[str, str], requests: tuple[Request, ...],
                 acks: Acks, pace: Pace) -> None:
        super().__init__(name="chaos-client", daemon=True)
        self.url = url.rstrip("/") + "/api/v1/events"
        self.keys, self.todo, self.acks, self.pace = keys, requests, acks, pace
        self.in_flight = threading.Event()  # a POST is under way (serve restarts mid-batch)
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            for request in self.todo:
                if self.stopping.is_set():
                    return
                self.pace.wait(len(request.events))
                self._post_until_acked(request)
        except Exception as exc:  # noqa: BLE001 - kept for the test to report
            self.error = f"{type(exc).__name__}: {exc}"

    def _post_until_acked(self, request: Request) -> None:
        body = orjson.dumps(list(request.events))
        headers = {"Authorization": f"Bearer {self.keys[request.source]}",
                   "Content-Type": "application/json"}
        while not self.stopping.is_set():
            delay = self._post_once(request, body, headers)
            if delay is None:
                return
            time.sleep(delay)

    def _post_once(self, request: Request, body: bytes, headers: dict[str, str]) -> float | None:
        """None once acknowledged; else the seconds to wait before re-sending."""
        post = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        self.in_flight.set()
        try:
            with urllib.request.urlopen(post, timeout=90) as reply:
                answer = orjson.loads(reply.read())
                if reply.status != 202 or answer.get("accepted") != len(request.events):
                    raise RuntimeError(f"unexpected answer {reply.status}: {answer}")
            self.acks.add(request.ids)
            return None
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise RuntimeError(
                    f"ingest answered {exc.code}: {exc.read()[:300]!r}") from exc
            self.acks.retried("503")
            return min(float(exc.headers.get("Retry-After", "1")), 2.0)
        except (OSError, http.client.HTTPException) as exc:
            self.acks.retried(type(exc).__name__)
            return 0.5
        finally:
            self.in_flight.clear()


@dataclass
class Load:
    """Every client of the workload, started together, sharing one pace and one record of acks."""

    clients: list[Client]
    acks: Acks
    pace: Pace

    @classmethod
    def of(cls, url: str, keys: dict[str, str], client_requests: tuple[tuple[Request, ...], ...],
           rate: float) -> Load:
        acks, pace = Acks(), Pace(rate)
        return cls([Client(url, keys, todo, acks, pace) for todo in client_requests], acks, pace)

    def start(self) -> None:
        self.pace.began = time.monotonic()
        for client in self.clients:
            client.start()

    def any_in_flight(self) -> bool:
        return any(client.in_flight.is_set() for client in self.clients)

    def errors(self) -> list[str]:
        return [client.error for client in self.clients if client.error]

    def running(self) -> bool:
        return any(client.is_alive() for client in self.clients)

    def finish(self, timeout: float) -> None:
        """Lift the pace and wait for every client to post its last request."""
        self.pace.lift()
        deadline = time.monotonic() + timeout
        for client in self.clients:
            client.join(max(0.0, deadline - time.monotonic()))
        for client in self.clients:
            client.stopping.set()
        left = [c for c in self.clients if c.is_alive()]
        assert not left, f"{len(left)} client(s) still posting after {timeout:.0f}s"

"""`advisering serve` as two processes on one port (real broker): shared, counted, supervised."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from advisering.dev.demo import demo_grants
from advisering.dev.scenario import demo_scenario
from advisering.http.sources import add_source
from advisering.kafka.topics import CASE_EVENTS, load_vocabulary
from advisering.testing import end_offsets, kafka_at, read_topic
from tests.integration.bus import ROOT, bus_env, free_port

POSTS = 120  # one event per request, each on a connection of its own


@dataclass
class Serve:
    """A running `advisering serve` parent with its log (JSON lines)."""

    process: subprocess.Popen[bytes]
    port: int
    key: str
    log_path: Path

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{"):
                out.append(orjson.loads(line))
        return out

    def children(self) -> dict[int, int]:
        """Process index -> pid, from the parent's `serve_process_started` lines."""
        return {line["process"]: line["pid"] for line in self.lines()
                if line["event"] == "serve_process_started"}

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as page:
            return bytes(page.read()).decode()


def wait_started(serve: Serve, processes: int, timeout: float = 60.0) -> None:
    """Until every child logged `serve_starting` and the port answers /readyz with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.process.poll() is None, serve.log_path.read_text()[-3000:]
        started = {line.get("serve_process") for line in serve.lines()
                   if line["event"] == "serve_starting"}
        if len(started) == processes and ready(serve.port):
            return
        time.sleep(0.3)
    raise AssertionError(f"serve not started:\n{serve.log_path.read_text()[-3000:]}")


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as page:
            return bool(page.status == 200)
    except OSError:
        return False


@pytest.fixture
def serve(topics_ready: str, tmp_path: Path) -> Iterator[Serve]:
    """`advisering serve` with ADVISERING_SERVE_PROCESSES=2 (ingest only), stopped after."""
    sources = tmp_path / "sources.yaml"
    key = add_source(sources, "momentum", demo_grants()["momentum"],
                     vocabulary=load_vocabulary(ROOT / "topics"))
    port = free_port()
    env = bus_env(topics_ready, ADVISERING_SERVE_PROCESSES="2", ADVISERING_SERVE_PORT=str(port),
                  ADVISERING_SOURCES_FILE=str(sources), ADVISERING_LOG_LEVEL="DEBUG")
    log_path = tmp_path / "serve.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "advisering.cli", "serve"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    running = Serve(process, port, key, log_path)
    try:
        wait_started(running, 2)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def momentum_events(count: int) -> list[dict[str, Any]]:
    """``count`` copies of the scenario's first momentum event, each with an id of its own."""
    first = next(e for wave in demo_scenario() for e in wave if e["source"] == "momentum")
    return [dict(first, id=str(uuid.uuid4())) for _ in range(count)]


async def post_each(port: int, key: str, events: list[dict[str, Any]]) -> list[str]:
    """POST every event alone, eight at a time, each on a new connection; the 202's ids."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    pending = iter(events)
    accepted: list[str] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for event in pending:
            async with session.post(f"http://127.0.0.1:{port}/api/v1/events",
                                    data=orjson.dumps(event), headers=headers) as reply:
                body = await reply.read()
                assert reply.status == 202, body
                accepted.extend(orjson.loads(body)["ids"])

    connector = aiohttp.TCPConnector(force_close=True)  # a new connection per request
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(8)))
    return accepted


def accepted_total(metrics: str) -> float:
    found = re.search(r'^advisering_ingest_events_total\{outcome="accepted",reason=""\} (\S+)$',
                      metrics, re.MULTILINE)
    assert found, metrics
    return float(found.group(1))


def test_two_processes_share_the_port_and_every_acknowledged_event_is_on_the_topic(
    serve: Serve, topics_ready: str
) -> None:
    """Both processes take connections; every 202'd event is on case-events; /metrics sums."""
    before = end_offsets(kafka_at(topics_ready), CASE_EVENTS)
    accepted = asyncio.run(post_each(serve.port, serve.key, momentum_events(POSTS)))
    assert len(accepted) == POSTS
    served_by = [line["serve_process"] for line in serve.lines()
                 if line["event"] == "ingest_accepted"]
    assert len(served_by) == POSTS
    assert set(served_by) == {0, 1}, served_by
    on_topic = {orjson.loads(record.value)["id"]
                for record in read_topic(kafka_at(topics_ready), CASE_EVENTS, before)
                if record.value is not None}
    assert set(accepted) <= on_topic
    # Whichever process takes a scrape answers for both.
    for _ in range(6):
        assert accepted_total(serve.metrics()) == POSTS


def test_a_child_that_dies_stops_the_whole_serve_with_a_failure(serve: Serve) -> None:
    """SIGKILL to one child: the parent stops the other and exits 70, for its supervisor."""
    children = serve.children()
    assert sorted(children) == [0, 1]
    os.kill(children[0], signal.SIGKILL)
    assert serve.process.wait(timeout=60) == 70
    with pytest.raises(ProcessLookupError):
        os.kill(children[1], 0)
    exited = [line for line in serve.lines() if line["event"] == "serve_process_exited"]
    assert exited[0]["pid"] == children[0] and exited[0]["returncode"] == -signal.SIGKILL


def test_sigterm_to_the_parent_stops_every_process_cleanly(serve: Serve) -> None:
    """SIGTERM to the parent: both children stop within the grace, and the parent exits 0."""
    children = serve.children()
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=60) == 0
    for pid in children.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert any(line["event"] == "serve_processes_stopped" and line["in_time"]
               for line in serve.lines())

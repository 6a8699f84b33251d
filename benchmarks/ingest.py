"""Throughput and latency of the HTTP ingest, against confluent-kafka producing directly.

Measured in one run on one broker, on the same simulated events (CPR parties,
from advisering.simulator):

1. ingest single   `advisering serve` as a subprocess; N concurrent aiohttp
                   clients on loopback, one event per POST /api/v1/events.
                   Events/s accepted (202) and p50/p99 request latency.
2. ingest batched  the same server; N concurrent clients, B events per request
                   (a JSON array of one source's events).
3. direct          confluent-kafka (idempotent, acks=all, linger.ms as the
                   ingest's producer) producing the same events, prepared and
                   pseudonymised beforehand, to advisering.case-events: as fast as
                   it can (flood), and with at most N records in flight (a closed
                   loop like N single-event HTTP clients). Events/s and per-record
                   delivery latency (delivery callback minus produce call).

Besides: the CPU cost of the edge steps per event, in this process (parse,
deep copy, pseudonymise, CPR scan, pydantic validation, encode); the CPU used
by the server (event loop thread, librdkafka threads, others), the broker and
this client in each phase; the server's own produce-to-ack time per request
(from its /metrics). ``--profile`` also runs the two ingest phases against a
second server under cProfile and prints where its event loop spends its time.

Usage (a broker of your own; topics applied):

    ADVISERING_KAFKA_PORT=49192 .venv/bin/advisering kafka start --fresh
    ADVISERING_KAFKA_PORT=49192 .venv/bin/advisering topics apply --replication-factor 1
    .venv/bin/python benchmarks/ingest.py --bootstrap 127.0.0.1:49192 --events 20000

Writes benchmarks/results/ingest-latest.json. Every wait has a timeout and the
server subprocess is always stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import ctypes
import datetime as dt
import gc
import hashlib
import itertools
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from common import (
    PROFILE_START,
    ROOT,
    TICK,
    ChildProcess,
    advisering_env,
    broker_pid,
    free_port,
    log,
    python_argv,
    read_profile,
    run_info,
    running,
    share_cell,
    share_of_busy,
    stat_cpu_seconds,
    write_results,
)
from confluent_kafka import KafkaError, Producer
from confluent_kafka import __version__ as confluent_version
from prometheus_client.parser import text_string_to_metric_families

from advisering.broker.topic_specs import CASE_EVENTS
from advisering.client import default_vocabulary
from advisering.edge import prepare_event
from advisering.events import CaseEvent, Rejection, Vocabulary, encode_event
from advisering.privacy import cpr_paths, find_cprs, pseudonymise
from advisering.simulator import CET, Municipality, simulate, source_grants
from advisering.testing import end_offsets
from advisering.web.sources import add_source

RESULTS = ROOT / "benchmarks" / "results" / "ingest-latest.json"
PR_SET_PDEATHSIG = 1
SIM_START = dt.datetime(2026, 10, 1, tzinfo=CET)
SIM_DAYS = 30
EVENTS_PER_CITIZEN = 0.7  # what the simulator yields in 30 days, roughly
# Ports of other brokers on this machine that a benchmark must not write to.
FOREIGN_PORTS = (9092, 29092, 39092, 39192, 39292, 49092)
# The ingest's producer (advisering.broker.async_producer) uses these; direct uses the same.
PRODUCER_DEFAULTS: dict[str, Any] = {"enable.idempotence": True, "acks": "all", "linger.ms": 2}


# Runs `advisering serve` with another GIL switch interval (a variant, see --switch-interval).
SWITCH_INTERVAL_BOOT = (
    "import runpy, sys; sys.setswitchinterval(float(sys.argv.pop(1))); "
    "runpy.run_module('advisering.cli', run_name='__main__', alter_sys=True)"
)


def code_state() -> dict[str, Any]:
    """The commit measured and the files of advisering/ that differ from it (read-only git)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10, check=False).stdout.rstrip("\n")
        except (OSError, subprocess.TimeoutExpired):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "advisering").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "changed_files": changed}


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------

def simulated_events(n: int, citizens: int, seed: int) -> tuple[list[dict[str, Any]], int]:
    """The first ``n`` events of a simulated municipality; cycled with fresh ids if fewer."""
    municipality = Municipality(seed=seed, citizens=citizens, days=SIM_DAYS, start=SIM_START)
    events = list(itertools.islice(simulate(municipality), n))
    simulated = len(events)
    if not events:
        raise RuntimeError(f"the simulator gave no event for {citizens} citizens")
    index = 0
    while len(events) < n:
        again = copy.deepcopy(events[index % simulated])
        again["id"] = str(uuid.uuid4())
        events.append(again)
        index += 1
    return events, simulated


@dataclass(frozen=True)
class Request:
    source: str
    body: bytes
    events: int


def single_requests(events: list[dict[str, Any]]) -> list[Request]:
    return [Request(e["source"], orjson.dumps(e), 1) for e in events]


def batched_requests(events: list[dict[str, Any]], size: int) -> list[Request]:
    """JSON arrays of ``size`` events of one source each (an API key is per source)."""
    pending: dict[str, list[dict[str, Any]]] = {}
    requests: list[Request] = []
    for event in events:
        batch = pending.setdefault(event["source"], [])
        batch.append(event)
        if len(batch) == size:
            requests.append(Request(event["source"], orjson.dumps(batch), size))
            pending[event["source"]] = []
    requests.extend(Request(source, orjson.dumps(batch), len(batch))
                    for source, batch in pending.items() if batch)
    return requests


def warmup_events(events: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` copies of the first events under fresh ids (not measured)."""
    out = []
    for event in itertools.islice(itertools.cycle(events), count):
        again = copy.deepcopy(event)
        again["id"] = str(uuid.uuid4())
        out.append(again)
    return out


def prepared_records(events: list[dict[str, Any]], key: bytes,
                     vocabulary: Vocabulary) -> list[tuple[bytes, bytes]]:
    """(Kafka key, encoded value) as the ingest would produce them."""
    records = []
    for raw in events:
        prepared = prepare_event(raw, key, vocabulary)
        if isinstance(prepared, Rejection):
            raise RuntimeError(f"a simulated event was rejected at the edge: {prepared}")
        records.append((prepared.key.encode(), encode_event(prepared)))
    return records


# ---------------------------------------------------------------------------
# The edge's steps on one core (no HTTP, no Kafka)
# ---------------------------------------------------------------------------

def _pseudonymise_parties(event: dict[str, Any], key: bytes) -> dict[str, Any]:
    for party in event["data"]["parties"]:
        if "cpr" in party:
            party["citizen"] = pseudonymise(party.pop("cpr"), key)
    return event


def edge_breakdown(events: list[dict[str, Any]], key: bytes, vocabulary: Vocabulary,
                   repeats: int) -> dict[str, Any]:
    """Microseconds per event of each step the ingest runs on an event (best of repeats, no GC)."""
    bodies = [orjson.dumps(e) for e in events]
    copies = [copy.deepcopy(e) for e in events]
    pseudonymised = [_pseudonymise_parties(copy.deepcopy(e), key) for e in events]
    validated: list[CaseEvent] = []
    for raw in pseudonymised:
        event = CaseEvent.model_validate(raw)
        validated.append(event)

    steps: dict[str, Callable[[], object]] = {
        "orjson.loads (request body)": lambda: [orjson.loads(b) for b in bodies],
        "copy.deepcopy (edge)": lambda: [copy.deepcopy(e) for e in copies],
        "pseudonymise parties (HMAC)": lambda: [
            pseudonymise(p["cpr"], key) for e in events for p in e["data"]["parties"]
            if "cpr" in p],
        "cpr_paths scan (validate_event)": lambda: [list(cpr_paths(e)) for e in pseudonymised],
        "(reference) find_cprs over orjson.dumps": lambda: [
            find_cprs(orjson.dumps(e).decode()) for e in pseudonymised],
        "CaseEvent.model_validate (pydantic)": lambda: [
            CaseEvent.model_validate(e) for e in pseudonymised],
        "encode_event (model_dump + orjson)": lambda: [encode_event(e) for e in validated],
        "prepare_event (all edge steps)": lambda: [
            prepare_event(e, key, vocabulary) for e in copies],
        "prepare_event + encode_event": lambda: [
            encode_event(p) for e in copies
            for p in [prepare_event(e, key, vocabulary)] if isinstance(p, CaseEvent)],
        "sha256 of an API key (auth)": lambda: [
            hashlib.sha256(b"adv_" + b"x" * 43).digest() for _ in events],
    }
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):  # round robin, so that a busy moment hits every step alike
        for name, step in steps.items():
            # As timeit: without the cyclic GC, which would otherwise walk these big
            # lists in whichever step happens to trigger it.
            gc.collect()
            gc.disable()
            try:
                began = time.perf_counter()
                step()
                best[name] = min(best[name], time.perf_counter() - began)
            finally:
                gc.enable()
    out = {name: round(seconds / len(events) * 1e6, 1) for name, seconds in best.items()}
    return {"events": len(events), "repeats": repeats, "us_per_event": out}


# ---------------------------------------------------------------------------
# CPU accounting (from /proc)
# ---------------------------------------------------------------------------

def threads_cpu(pid: int | None) -> dict[str, float]:
    """CPU seconds of a process by thread group: the main thread, librdkafka, the rest."""
    if pid is None:
        return {}
    groups: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        task = Path(f"/proc/{pid}/task/{tid}")
        used = stat_cpu_seconds(task / "stat")
        if used is None:
            continue
        try:
            comm = (task / "comm").read_text().strip()
        except OSError:
            comm = "?"
        group = ("main" if int(tid) == pid else "librdkafka" if comm.startswith("rdk:")
                 else "other threads")
        groups[group] = groups.get(group, 0.0) + used
    return groups


def host_busy_seconds() -> float:
    """CPU seconds the whole host spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / TICK


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU of the server (by thread group), the broker, this client and the host."""

    def __init__(self, server_pid: int | None, broker: int | None) -> None:
        self.server_pid = server_pid
        self.broker = broker
        self._began: dict[str, Any] = {}

    def _sample(self) -> dict[str, Any]:
        broker = stat_cpu_seconds(Path(f"/proc/{self.broker}/stat")) if self.broker else None
        return {"wall": time.monotonic(), "server": threads_cpu(self.server_pid),
                "broker": broker,
                "client": self_cpu(), "host": host_busy_seconds()}

    def start(self) -> None:
        self._began = self._sample()

    def stop(self, events: int) -> dict[str, Any]:
        now, then = self._sample(), self._began
        wall = now["wall"] - then["wall"]
        out: dict[str, Any] = {"wall_s": round(wall, 3), "host_cores": os.cpu_count()}

        def row(name: str, used: float) -> None:
            out[name] = {"cpu_s": round(used, 3), "cores": round(used / wall, 2),
                         "us_per_event": round(used / events * 1e6, 1)}

        if now["server"]:
            groups = {g: now["server"].get(g, 0.0) - then["server"].get(g, 0.0)
                      for g in now["server"]}
            row("server", sum(groups.values()))
            out["server"]["by_thread_us_per_event"] = {
                g: round(v / events * 1e6, 1) for g, v in sorted(groups.items())}
        if now["broker"] is not None and then["broker"] is not None:
            row("broker", now["broker"] - then["broker"])
        row("client", now["client"] - then["client"])
        row("host", now["host"] - then["host"])
        ours = sum(out[k]["cpu_s"] for k in ("server", "broker", "client") if k in out)
        # /proc counts in clock ticks (10 ms): too coarse for a very short phase.
        out["other_processes_cores"] = (round((out["host"]["cpu_s"] - ours) / wall, 2)
                                        if wall >= 0.5 else None)
        return out


def wait_quiet(bootstrap: str, timeout: float, threshold: float = 0.25) -> float:
    """Wait until processes other than this one and the broker use < ``threshold`` cores."""
    deadline = time.monotonic() + timeout
    while True:
        meter = CpuMeter(None, broker_pid(bootstrap))
        meter.start()
        time.sleep(2.0)
        others = float(meter.stop(1)["other_processes_cores"] or 0.0)
        if others < threshold or time.monotonic() > deadline:
            log(f"  other processes use {others:.2f} cores"
                + ("" if others < threshold else f" (still, after {timeout:.0f}s; going on)"))
            return others


# ---------------------------------------------------------------------------
# The server subprocess
# ---------------------------------------------------------------------------

def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


LIBC = _libc()  # looked up here, so that the forked child only makes the system call


def _die_with_parent() -> None:
    """In the child: SIGTERM when this benchmark dies, even by SIGKILL (Linux prctl)."""
    prctl = getattr(LIBC, "prctl", None)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM as Ctrl-C, so that the finally blocks stop the server."""
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class Server(ChildProcess):
    """`advisering serve` in a subprocess (optionally under benchmarks/profiled.py)."""

    env: dict[str, str]
    port: int
    log_path: Path
    profile_to: Path | None = None
    switch_interval: float | None = None  # sys.setswitchinterval in the server
    process: subprocess.Popen[bytes] | None = None

    @property
    def label(self) -> str:
        return "the server"

    @property
    def http_port(self) -> int:
        return self.port

    def start(self) -> None:
        args = ["-m", "advisering.cli", "serve"]
        if self.switch_interval is not None:
            args = ["-c", SWITCH_INTERVAL_BOOT, str(self.switch_interval), "serve"]
        with self.log_path.open("ab") as handle:
            self.process = subprocess.Popen(python_argv(self.profile_to, *args), env=self.env,
                                            stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                                            preexec_fn=_die_with_parent)  # noqa: PLW1509

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def produce_seconds(self) -> tuple[float, float]:
        """(sum, count) of advisering_ingest_produce_seconds from /metrics."""
        answer = self.get("/metrics")
        if answer is None or answer[0] != 200:
            return 0.0, 0.0
        total = count = 0.0
        for family in text_string_to_metric_families(answer[1].decode()):
            if family.name != "advisering_ingest_produce_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    total = sample.value
                elif sample.name.endswith("_count"):
                    count = sample.value
        return total, count

    def profile(self, on: bool, timeout: float = 60.0) -> None:
        if on:
            if self.profile_to is not None and self.process is not None:
                self.process.send_signal(PROFILE_START)
            return
        self.write_profile(timeout, poll=0.3)


@contextmanager
def serving(server: Server, ready_timeout: float) -> Iterator[Server]:
    """``server`` started and ready (or the reason why not), stopped on the way out."""
    with running(server):
        took = server.wait_ready(ready_timeout)
        log(f"  server pid {server.pid} ready on port {server.port} after {took:.1f}s")
        yield server


def server_env(bootstrap: str, pseudonym_key: str, sources_file: Path, port: int,
               max_events: int) -> dict[str, str]:
    return advisering_env(bootstrap, pseudonym_key, {
        "ADVISERING_SOURCES_FILE": str(sources_file),
        "ADVISERING_SERVE_PORT": str(port),
        "ADVISERING_INGEST_MAX_EVENTS": str(max_events),
    })


# ---------------------------------------------------------------------------
# Latency figures
# ---------------------------------------------------------------------------

def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, int(-(-q * len(ordered) // 1)))  # ceil(q * n), at least 1
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    if not ordered:
        return {"count": 0}
    return {"count": len(ordered),
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
            "p90_ms": round(percentile(ordered, 0.90) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


# ---------------------------------------------------------------------------
# 1 and 2. HTTP ingest
# ---------------------------------------------------------------------------

async def _post_all(port: int, requests: list[Request], headers: dict[str, dict[str, str]],
                    concurrency: int, request_timeout: float) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/events"
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    accepted = 0
    pending = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=request_timeout)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        for request in pending:  # one shared iterator: each request is sent once
            began = time.perf_counter()
            try:
                async with session.post(url, data=request.body,
                                        headers=headers[request.source]) as response:
                    answer = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[0] += 1  # 0: no HTTP answer (connection error or timeout)
                if len(errors) < 5:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - began)
            statuses[status] += 1
            if status == 202:
                accepted += request.events
            elif len(errors) < 5:
                errors.append(f"{status}: {answer[:300]!r}")

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "latencies": latencies, "statuses": dict(statuses),
            "errors": errors, "accepted": accepted}


def post_all(port: int, requests: list[Request], headers: dict[str, dict[str, str]],
             concurrency: int, request_timeout: float, timeout: float) -> dict[str, Any]:
    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(
            _post_all(port, requests, headers, concurrency, request_timeout), timeout)

    return asyncio.run(bounded())


def _loop_bound(cpu: dict[str, Any]) -> int | None:
    """Events/s the server would reach with one core for its event loop (main thread)."""
    main_us = cpu.get("server", {}).get("by_thread_us_per_event", {}).get("main")
    return round(1e6 / main_us) if main_us else None


def bench_ingest(name: str, server: Server, requests: list[Request], warmup: list[Request],
                 headers: dict[str, dict[str, str]], bootstrap: str,
                 args: argparse.Namespace) -> dict[str, Any]:
    events = sum(r.events for r in requests)
    if warmup:
        done = post_all(server.port, warmup, headers, args.concurrency, args.request_timeout,
                        args.timeout)
        if done["accepted"] != sum(r.events for r in warmup):
            raise RuntimeError(f"{name}: warm-up not accepted: {done['statuses']} "
                               f"{done['errors']}")
    server.check_alive()
    before = end_offsets(bootstrap, CASE_EVENTS)
    produce_before = server.produce_seconds()
    meter = CpuMeter(server.pid, broker_pid(bootstrap))
    meter.start()
    server.profile(on=True)
    done = post_all(server.port, requests, headers, args.concurrency, args.request_timeout,
                    args.timeout)
    server.profile(on=False)
    cpu = meter.stop(events)
    produce_after = server.produce_seconds()
    after = end_offsets(bootstrap, CASE_EVENTS)
    written = sum(after.values()) - sum(before.values())
    server.check_alive()
    produce_count = produce_after[1] - produce_before[1]
    produce_mean_ms = ((produce_after[0] - produce_before[0]) / produce_count * 1000
                       if produce_count else None)
    result = {
        "requests": len(requests), "events": events,
        "events_per_request": round(events / len(requests), 1),
        "concurrency": args.concurrency, "accepted": done["accepted"],
        "written_to_topic": written, "errors": done["errors"],
        "statuses": {str(k): v for k, v in done["statuses"].items()},
        "seconds": round(done["seconds"], 3),
        "events_per_s": round(done["accepted"] / done["seconds"]),
        "requests_per_s": round(len(done["latencies"]) / done["seconds"]),
        "request_latency": latency_summary(done["latencies"]),
        "event_loop_bound_events_per_s": _loop_bound(cpu),
        "server_produce_to_ack_mean_ms": (round(produce_mean_ms, 2)
                                          if produce_mean_ms is not None else None),
        "cpu": cpu,
    }
    if done["accepted"] != events or written < done["accepted"]:
        log(f"  WARNING {name}: {done['accepted']} of {events} accepted, {written} on the "
            f"topic; statuses {done['statuses']}; {done['errors'][:3]}")
    return result


# ---------------------------------------------------------------------------
# 3. confluent-kafka directly
# ---------------------------------------------------------------------------

def _produce_requests(stats: dict[str, Any]) -> int:
    """ProduceRequests sent so far, from librdkafka's statistics."""
    return sum(int(b.get("req", {}).get("Produce", 0)) for b in stats.get("brokers", {}).values())


def bench_direct(bootstrap: str, records: list[tuple[bytes, bytes]], window: int | None,
                 timeout: float) -> dict[str, Any]:
    """Produce ``records`` to case-events; ``window`` bounds the records in flight."""
    latest: dict[str, Any] = {}

    def statistics_seen(text: str) -> None:
        latest.clear()
        latest.update(orjson.loads(text))

    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "bench-direct",
                         "statistics.interval.ms": 100, "stats_cb": statistics_seen,
                         **PRODUCER_DEFAULTS})
    n = len(records)
    sent_at = [0.0] * n
    latency = [0.0] * n
    failures: list[str] = []
    confirmed = 0

    def delivered(index: int, error: KafkaError | None, _message: Any) -> None:
        nonlocal confirmed
        latency[index] = time.perf_counter() - sent_at[index]
        confirmed += 1
        if error is not None:
            failures.append(error.str())

    def fresh_statistics() -> int:
        latest.clear()
        deadline = time.monotonic() + 5
        while not latest and time.monotonic() < deadline:
            producer.poll(0.05)
        return _produce_requests(latest) if latest else -1

    # Warm up: connection, metadata and the idempotent producer id, outside the figures.
    producer.produce(CASE_EVENTS, key=records[0][0], value=records[0][1])
    if producer.flush(30):
        raise TimeoutError("direct: the warm-up record was not confirmed in 30s")
    requests_before = fresh_statistics()
    before = end_offsets(bootstrap, CASE_EVENTS)
    meter = CpuMeter(None, broker_pid(bootstrap))
    deadline = time.monotonic() + timeout
    meter.start()
    began = time.perf_counter()
    for index, (key, value) in enumerate(records):
        if window is not None:
            while index - confirmed >= window:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"direct: {confirmed} of {n} confirmed in {timeout}s")
        while True:
            sent_at[index] = time.perf_counter()
            try:
                producer.produce(CASE_EVENTS, key=key, value=value,
                                 on_delivery=partial(delivered, index))
                break
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"direct: the queue stayed full for {timeout}s") from None
        producer.poll(0)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    seconds = time.perf_counter() - began
    cpu = meter.stop(n)
    if remaining or failures or confirmed != n:
        raise RuntimeError(f"direct: {remaining} unconfirmed, {confirmed} confirmed, "
                           f"failures {failures[:3]}")
    requests_after = fresh_statistics()
    produce_requests = (requests_after - requests_before
                        if requests_before >= 0 and requests_after >= 0 else None)
    written = sum(end_offsets(bootstrap, CASE_EVENTS).values()) - sum(before.values())
    return {"events": n, "window": window, "written_to_topic": written,
            "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "delivery_latency": latency_summary(latency),
            "produce_requests": produce_requests,
            "records_per_produce_request": (round(n / produce_requests, 1)
                                            if produce_requests else None),
            "cpu": cpu}


def bench_direct_rounds(bootstrap: str, records: list[tuple[bytes, bytes]],
                        window: int | None, rounds: int, timeout: float) -> dict[str, Any]:
    """``rounds`` runs; the figures of the median run by events/s, every run's rate kept."""
    runs = [bench_direct(bootstrap, records, window, timeout) for _ in range(rounds)]
    ordered = sorted(runs, key=lambda run: run["events_per_s"])
    median = dict(ordered[len(ordered) // 2])
    median["rounds_events_per_s"] = [run["events_per_s"] for run in runs]
    return median


# ---------------------------------------------------------------------------
# The optional profile of the server's event loop
# ---------------------------------------------------------------------------

CATEGORIES = (
    ("/advisering/privacy.py", "advisering.privacy (CPR scan, HMAC)"),
    ("/advisering/edge.py", "advisering.edge"),
    ("/advisering/events.py", "advisering.events"),
    ("/advisering/web/", "advisering.web (handler)"),
    ("/advisering/broker/", "advisering.broker (AsyncProducer)"),
    ("/advisering/", "advisering (other)"),
    ("/pydantic", "pydantic"),
    ("/copy.py", "copy.deepcopy"),
    ("/aiohttp/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/asyncio/", "asyncio"),
    ("/prometheus_client/", "prometheus_client"),
    ("/structlog/", "structlog"),
    ("/re/", "re"),
    ("/hmac.py", "hmac"),
)


# In the builtins ("~"): by the function's name.
BUILTIN_CATEGORIES = (
    ("orjson", "orjson"), ("pydantic", "pydantic"), ("validate", "pydantic"),
    ("Producer", "confluent_kafka"), ("re.Pattern", "re"), ("hmac", "hmac"),
    ("_hashlib", "hmac"), ("base64", "base64"), ("deepcopy", "copy.deepcopy"),
    ("socket", "socket I/O"), ("send", "socket I/O"), ("recv", "socket I/O"),
)


def summarise_profile(path: Path, events: int, top: int) -> dict[str, Any]:
    read = read_profile(path, CATEGORIES, BUILTIN_CATEGORIES, top,
                        r"advisering|web_protocol|web_app|copy")
    busy = read.busy
    table = {name: {"seconds": round(sec, 3),
                    "us_per_event": round(sec / events * 1e6, 1),
                    "share_of_busy": share_of_busy(name, sec, busy)}
             for name, sec in read.by_category.most_common()}
    return {"events": events, "busy_s": round(busy, 3),
            "busy_us_per_event": round(busy / events * 1e6, 1), "by_category": table,
            "top_tottime": read.top_tottime, "cumulative_selected": read.cumulative_selected}


def print_profile(title: str, summary: dict[str, Any]) -> None:
    print(f"\n--- cProfile of the server's event loop, {title}: busy {summary['busy_s']} s "
          f"= {summary['busy_us_per_event']} us/event (profiled, so inflated) ---")
    for name, row in summary["by_category"].items():
        print(f"  {name:40s} {row['seconds']:8.3f} s {row['us_per_event']:8.1f} us/ev  "
              f"{share_cell(row)}")


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def _cpu_cell(cpu: dict[str, Any], name: str) -> str:
    row = cpu.get(name)
    return f"{row['us_per_event']:.0f}" if row else "-"


def _cores_cell(cores: float | None) -> str:
    return "-" if cores is None else f"{cores:.2f}"


def print_table(results: dict[str, Any]) -> None:
    phases = results["phases"]
    print()
    print(f"{'phase':40s} {'events/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'server':>7s} "
          f"{'broker':>7s} {'client':>7s} {'others':>6s}")
    print(f"{'':40s} {'':>9s} {'':>8s} {'':>8s} {'us CPU per event':>23s} {'cores':>6s}")
    print("-" * 101)
    for name, label, latency_key in (
        ("ingest_single", "ingest, 1 event/request", "request_latency"),
        ("ingest_batched", f"ingest, {results['config']['batch']} events/request",
         "request_latency"),
        ("direct", "direct confluent-kafka (flood)", "delivery_latency"),
        ("direct_windowed", f"direct, <= {results['config']['concurrency']} in flight",
         "delivery_latency"),
    ):
        phase = phases.get(name)
        if phase is None:
            continue
        latency = phase[latency_key]
        cpu = phase["cpu"]
        print(f"{label:40s} {phase['events_per_s']:>9,} {latency['p50_ms']:>8.2f} "
              f"{latency['p99_ms']:>8.2f} {_cpu_cell(cpu, 'server'):>7s} "
              f"{_cpu_cell(cpu, 'broker'):>7s} {_cpu_cell(cpu, 'client'):>7s} "
              f"{_cores_cell(cpu['other_processes_cores']):>6s}")
    for name in ("direct", "direct_windowed"):
        phase = phases[name]
        print(f"{name}: {phase['records_per_produce_request']} records per ProduceRequest "
              f"({phase['produce_requests']} requests); events/s of each round "
              f"{phase['rounds_events_per_s']}")
    print("latency: ingest = HTTP request (send to 202 read); direct = produce() call to "
          "delivery callback, per record")
    for name in ("ingest_single", "ingest_batched"):
        phase = phases[name]
        by_thread = phase["cpu"].get("server", {}).get("by_thread_us_per_event", {})
        print(f"{name}: server CPU by thread (us/event) {by_thread} -> with a core of its own "
              f"the event loop would top out at {phase['event_loop_bound_events_per_s']:,} "
              f"events/s; server produce->ack "
              f"mean {phase['server_produce_to_ack_mean_ms']} ms of request p50 "
              f"{phase['request_latency']['p50_ms']} ms; {phase['requests']} requests at "
              f"{phase['requests_per_s']:,}/s; statuses {phase['statuses']}")
    ratios = results["ratios"]
    print(f"\ningest single  / direct = {ratios['ingest_single_over_direct']}x events/s")
    print(f"ingest batched / direct = {ratios['ingest_batched_over_direct']}x events/s")
    if "ingest_single_over_direct_windowed" in ratios:
        print(f"ingest single  / direct <= {results['config']['concurrency']} in flight = "
              f"{ratios['ingest_single_over_direct_windowed']}x events/s")
    for name, variant in results.get("variants", {}).items():
        for phase in ("ingest_single", "ingest_batched"):
            row = variant[phase]
            print(f"variant {name} {phase}: {row['events_per_s']:,} events/s, request p50 "
                  f"{row['request_latency']['p50_ms']} ms p99 {row['request_latency']['p99_ms']}"
                  f" ms, server produce->ack mean {row['server_produce_to_ack_mean_ms']} ms, "
                  f"server {_cpu_cell(row['cpu'], 'server')} us CPU/event")
    print("\nedge steps on one core, no HTTP, no Kafka (us per event):")
    for step, us in results["edge_us_per_event"]["us_per_event"].items():
        print(f"  {step:40s} {us:8.1f}")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--bootstrap", default="127.0.0.1:49192")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--citizens", type=int, default=0,
                        help="simulated citizens (default: enough for --events)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP clients")
    parser.add_argument("--batch", type=int, default=100, help="events per batched request")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured events per phase")
    parser.add_argument("--max-events", type=int, default=1000,
                        help="ADVISERING_INGEST_MAX_EVENTS of the server")
    parser.add_argument("--direct-rounds", type=int, default=3,
                        help="runs of the (short) direct flood; the median is reported")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long until other processes use less "
                             "than 0.25 cores")
    parser.add_argument("--repeats", type=int, default=5, help="edge step timings: best of")
    parser.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="per HTTP request")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--profile", action="store_true",
                        help="also run both ingest phases against a cProfiled server")
    parser.add_argument("--switch-interval", type=float, action="append", default=[],
                        metavar="SECONDS",
                        help="also run both ingest phases against a server with this GIL "
                             "switch interval (sys.setswitchinterval; Python's default is "
                             "0.005); repeatable")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background
        signal.signal(signal.SIGINT, _terminate)
    bootstrap = args.bootstrap
    if any(server.strip().endswith(f":{port}") for server in bootstrap.split(",")
           for port in FOREIGN_PORTS):
        parser.error("use a broker of your own (for example 127.0.0.1:49192)")
    if args.events < 1 or args.concurrency < 1 or not 1 <= args.batch <= args.max_events:
        parser.error("--events and --concurrency must be >= 1, 1 <= --batch <= --max-events")

    n = args.events
    citizens = args.citizens or int(n / EVENTS_PER_CITIZEN * 1.1) + 50
    state = code_state()
    log(f"code: commit {state['commit']}, changed under advisering/: "
        f"{state['changed_files'] or 'none'}")
    log(f"simulating {citizens} citizens over {SIM_DAYS} days (seed {args.seed})")
    began = time.perf_counter()
    events, simulated = simulated_events(n, citizens, args.seed)
    mix = Counter(e["type"] for e in events)
    sources = sorted({e["source"] for e in events})
    log(f"  {len(events)} events ({simulated} simulated, {len(events) - simulated} cycled "
        f"with fresh ids) from {len(sources)} sources in {time.perf_counter() - began:.1f}s")

    pseudonym_key = secrets.token_hex(32)  # 64 hex characters
    vocabulary = default_vocabulary(ROOT / "topics")
    records = prepared_records(events, pseudonym_key.encode(), vocabulary)
    value_bytes = statistics.fmean(len(v) for _, v in records)
    body_bytes = statistics.fmean(len(orjson.dumps(e)) for e in events)
    log(f"  prepared for the direct producer: {value_bytes:.0f} bytes per record value; "
        f"{body_bytes:.0f} bytes per event in a request body")

    others_at_start = wait_quiet(bootstrap, args.wait_quiet) if args.wait_quiet > 0 else None
    log("edge steps on one core (no HTTP, no Kafka)")
    edge = edge_breakdown(events[:5000], pseudonym_key.encode(), vocabulary, args.repeats)
    log(f"  prepare_event {edge['us_per_event']['prepare_event (all edge steps)']} us/event")

    results: dict[str, Any] = {
        **run_info("benchmarks/ingest.py", aiohttp=aiohttp.__version__,
                   confluent_kafka=confluent_version, load_avg_at_start=os.getloadavg(),
                   others_cores_at_start=others_at_start),
        "code": state,
        "config": {"events": n, "simulated_events": simulated, "citizens": citizens,
                   "seed": args.seed, "days": SIM_DAYS, "concurrency": args.concurrency,
                   "batch": args.batch, "warmup": args.warmup,
                   "ingest_max_events": args.max_events, "producer": PRODUCER_DEFAULTS,
                   "sources": len(sources), "mix": dict(mix.most_common())},
        "edge_us_per_event": edge,
        "phases": {},
    }

    single = single_requests(events)
    batched = batched_requests(events, args.batch)
    warm = warmup_events(events, args.warmup)
    warm_single = single_requests(warm)
    warm_batched = batched_requests(warm, args.batch)
    phases = results["phases"]
    workdir = Path(tempfile.mkdtemp(prefix="advisering-bench-ingest-"))
    try:
        sources_file = workdir / "sources.yaml"
        grants = source_grants()
        keys = {source: add_source(sources_file, source, grants[source],
                                   description="benchmarks/ingest.py")
                for source in sources}
        headers = {source: {"Authorization": f"Bearer {key}",
                            "Content-Type": "application/json"} for source, key in keys.items()}
        port = free_port()
        server = Server(server_env(bootstrap, pseudonym_key, sources_file, port,
                                   args.max_events), port, workdir / "serve.log")
        log(f"starting `advisering serve` on port {port}")
        with serving(server, args.ready_timeout):
            log(f"1. ingest, one event per request, {args.concurrency} clients")
            phases["ingest_single"] = bench_ingest("ingest single", server, single,
                                                   warm_single, headers, bootstrap, args)
            log(f"  {phases['ingest_single']['events_per_s']:,} events/s, "
                f"{phases['ingest_single']['request_latency']}")
            log(f"2. ingest, {args.batch} events per request, {args.concurrency} clients")
            phases["ingest_batched"] = bench_ingest("ingest batched", server, batched,
                                                    warm_batched, headers, bootstrap, args)
            log(f"  {phases['ingest_batched']['events_per_s']:,} events/s, "
                f"{phases['ingest_batched']['request_latency']}")

        log("3. confluent-kafka directly (prepared events), as fast as it goes")
        phases["direct"] = bench_direct_rounds(bootstrap, records, None, args.direct_rounds,
                                               args.timeout)
        log(f"  {phases['direct']['events_per_s']:,} events/s, "
            f"{phases['direct']['delivery_latency']}")
        log(f"3b. confluent-kafka directly, at most {args.concurrency} records in flight")
        phases["direct_windowed"] = bench_direct_rounds(bootstrap, records, args.concurrency,
                                                        1, args.timeout)
        log(f"  {phases['direct_windowed']['events_per_s']:,} events/s, "
            f"{phases['direct_windowed']['delivery_latency']}")

        for interval in args.switch_interval:
            name = f"switch_interval_{interval:g}"
            log(f"variant {name}: both ingest phases, server with sys.setswitchinterval"
                f"({interval:g})")
            port = free_port()
            varied = Server(server_env(bootstrap, pseudonym_key, sources_file, port,
                                       args.max_events), port, workdir / f"serve-{name}.log",
                            switch_interval=interval)
            variant: dict[str, Any] = {"switch_interval": interval}
            with serving(varied, args.ready_timeout):
                variant["ingest_single"] = bench_ingest(f"{name} single", varied, single,
                                                        warm_single, headers, bootstrap, args)
                variant["ingest_batched"] = bench_ingest(f"{name} batched", varied, batched,
                                                         warm_batched, headers, bootstrap, args)
            for phase in ("ingest_single", "ingest_batched"):
                log(f"  {phase}: {variant[phase]['events_per_s']:,} events/s, "
                    f"{variant[phase]['request_latency']}")
            results.setdefault("variants", {})[name] = variant

        if args.profile:
            log("4. the same ingest phases against a cProfiled server (figures inflated)")
            profiles: dict[str, Any] = {}
            for name, requests, warmup in (("ingest_single", single, warm_single),
                                           ("ingest_batched", batched, warm_batched)):
                # A server per phase: cProfile keeps adding up after a disable/enable.
                profile_to = workdir / f"serve-{name}.prof"
                port = free_port()
                profiled = Server(server_env(bootstrap, pseudonym_key, sources_file, port,
                                             args.max_events), port,
                                  workdir / f"serve-{name}-profiled.log", profile_to)
                with serving(profiled, args.ready_timeout):
                    measured = bench_ingest(f"{name} (profiled)", profiled, requests, warmup,
                                            headers, bootstrap, args)
                profiles[name] = {"events_per_s_profiled": measured["events_per_s"],
                                  **summarise_profile(profile_to, len(events), 30)}
                print_profile(name, profiles[name])
                print(profiles[name]["top_tottime"])
            results["profiles"] = profiles
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    direct = phases["direct"]["events_per_s"]
    results["ratios"] = {
        "ingest_single_over_direct": round(phases["ingest_single"]["events_per_s"] / direct, 4),
        "ingest_batched_over_direct": round(phases["ingest_batched"]["events_per_s"] / direct,
                                            4),
        "ingest_single_over_direct_windowed": round(
            phases["ingest_single"]["events_per_s"] / phases["direct_windowed"]["events_per_s"],
            4),
    }
    print_table(results)
    write_results(args.output, results)
    log(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

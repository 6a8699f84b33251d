"""Scenario 4: `advisering worker` end to end on its preloaded backlog.

Start: the CreateTime of the first record the worker wrote to its own topics
(the changelog, written with every batch, or the repartition topic). End: the
last CreateTime on its output topics (the changelog record of the last batch
is written after everything else the batch caused), once the worker's own
/metrics show every citizen event through the engine. /metrics is polled
once a second only: rendering it costs the worker milliseconds of CPU.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Message
from harness.children import Subprocess, advisering_env, cleanup, free_port, python_argv, running
from harness.cpu import ProcessCpuMeter
from harness.kafka import (
    PARTITIONS,
    assigned_consumer,
    commit_offsets,
    create_topics,
    delete_app_topics,
)
from harness.procfs import broker_pid

from advisering.http.sources import add_source
from advisering.kafka.topics import AUDIT, CASE_EVENTS, NOTIFICATIONS
from advisering.testing import end_offsets, kafka_at, wait_until_idle
from scenarios.latency import measure_latency, retag
from scenarios.synthetic import GRANTS, Prepared, Stream

METRICS = {
    "advisering_processing_seconds_count": "correlated",
    "advisering_processing_seconds_sum": "engine_seconds",
    'advisering_events_processed_total{outcome="accepted"}': "accepted",
    'advisering_events_processed_total{outcome="dead_lettered"}': "dead_lettered",
    'advisering_worker_citizen_events_total{route="direct"}': "direct",
    'advisering_worker_citizen_events_total{route="repartitioned"}': "repartitioned",
}


def worker_process(bootstrap: str, app_id: str, workdir: Path, key: str,
                   profile_to: Path | None = None,
                   extra_env: dict[str, str] | None = None) -> Subprocess:
    port = free_port()
    sources = workdir / "sources.yaml"
    if not sources.exists():
        for name, grants in GRANTS.items():
            add_source(sources, name, grants, description="benchmarks/pipeline.py")
    env = advisering_env(bootstrap, key, {
        "ADVISERING_SOURCES_FILE": str(sources),
        "ADVISERING_WORKER_APP_ID": app_id,
        "ADVISERING_WORKER_WEB_PORT": str(port),
        "ADVISERING_WORKER_DATA_DIR": str(workdir / f"{app_id}-data"),
        "ADVISERING_WORKER_REPLICATION_FACTOR": "1",
        **(extra_env or {}),
    })
    argv = python_argv(profile_to, "-m", "advisering.cli", "worker")
    return Subprocess(app_id, argv, env, workdir / f"{app_id}.log", port, profile_to)


def parse_metrics(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in METRICS:
            found[METRICS[name]] = float(value)
    emitted = sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                  if line.startswith("advisering_notifications_emitted_total{"))
    found["notifications"] = emitted
    return found


def worker_metrics(proc: Subprocess) -> dict[str, float] | None:
    answer = proc.get("/metrics")
    if answer is None or answer[0] != 200:
        return None
    return parse_metrics(answer[1].decode())


@dataclass
class OutputTally:
    """The worker's records by topic (of the benchmark's citizens): counts, CreateTimes."""

    start_topics: set[str]
    citizens: set[str]
    counts: Counter[str] = field(default_factory=Counter)
    first_ts: float = float("inf")
    last_ts: dict[str, float] = field(default_factory=dict)
    notified: dict[str, str] = field(default_factory=dict)  # citizen by notification id

    def see(self, message: Message) -> bool:
        """Count ``message``; True when it is the first record on the start topic."""
        if message.error():
            return False
        topic = str(message.topic())
        stamp = message.timestamp()[1] / 1000.0
        first = False
        if topic in self.start_topics:
            first = self.first_ts == float("inf")
            self.first_ts = min(self.first_ts, stamp)
        else:
            value = orjson.loads(message.value() or b"{}")
            if value.get("citizen") not in self.citizens:
                return first
            if topic == NOTIFICATIONS:  # a notification re-sent under its id counts once
                self.notified[str(value.get("id"))] = str(value.get("citizen"))
        self.counts[topic] += 1
        self.last_ts[topic] = max(self.last_ts.get(topic, 0.0), stamp)
        return first


@dataclass
class MetricsPoll:
    """The workers' /metrics (summed over ``procs``), polled once a second; a timeline.

    ``idle_lag``, when given, is asked for the group's uncommitted records
    whenever the processed count did not move since the last poll: at 0 twice
    in a row the workers are done even short of ``expected`` (``short`` is
    then True), so copies that went missing show as a shortfall, not a timeout.
    """

    procs: list[Subprocess]
    expected: int
    spawned: float
    idle_lag: Callable[[], int] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    each: list[dict[str, float]] = field(default_factory=list)
    timeline: list[dict[str, float]] = field(default_factory=list)
    next_poll: float = 0.0
    idle_zero_lags: int = 0
    short: bool = False

    def done(self) -> float | None:
        """The wall-clock time once every expected event is through the engine."""
        now = time.monotonic()
        if now < self.next_poll:
            return None
        self.next_poll = now + 1.0
        before = self.metrics.get("correlated", 0.0)
        self.each = self.each or [{} for _ in self.procs]
        for number, proc in enumerate(self.procs):
            proc.check_alive()
            self.each[number] = worker_metrics(proc) or self.each[number]
        self.metrics = summed(self.each)
        if self.metrics:
            self.timeline.append({"t": round(time.time() - self.spawned, 2),
                                  "accepted": self.metrics.get("accepted", 0.0),
                                  "correlated": self.metrics.get("correlated", 0.0)})
        processed = self.metrics.get("correlated", 0.0)
        if processed >= self.expected:
            return time.time()
        if self.idle_lag is not None and 0 < processed == before:
            self.idle_zero_lags = self.idle_zero_lags + 1 if self.idle_lag() == 0 else 0
            self.short = self.idle_zero_lags >= 2
            return time.time() if self.short else None
        self.idle_zero_lags = 0
        return None


def summed(each: list[dict[str, float]]) -> dict[str, float]:
    """Several workers' metrics added up (empty while none answered yet)."""
    total: dict[str, float] = {}
    for metrics in each:
        for name, value in metrics.items():
            total[name] = total.get(name, 0.0) + value
    return total


def cpu_pids(bootstrap: str, procs: list[Subprocess]) -> dict[str, int | None]:
    """What the CPU meter reads: one worker as ``process``, several as ``worker_<n>``."""
    pids = {"process" if len(procs) == 1 else f"worker_{number}":
            proc.process.pid if proc.process else None
            for number, proc in enumerate(procs, 1)}
    return {**pids, "broker": broker_pid(bootstrap)}


def watch_until_done(bootstrap: str, starts: dict[str, dict[int, int]], tally: OutputTally,
                     poll: MetricsPoll, timeout: float) -> tuple[float, dict[str, Any]]:
    """(when the workers were done, their CPU from the first output record until then)."""
    consumer = assigned_consumer(bootstrap, starts)
    pids = cpu_pids(bootstrap, poll.procs)
    meter = ProcessCpuMeter(pids, loops=tuple(name for name in pids if name != "broker"))
    done_at: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while done_at is None:
            if time.monotonic() > deadline:
                tails = "\n".join(proc.log_tail() for proc in poll.procs)
                raise TimeoutError(f"worker: {poll.metrics} after {timeout}s "
                                   f"(expected {poll.expected})\n{tails}")
            for message in consumer.consume(num_messages=2000, timeout=0.02):
                if tally.see(message):
                    meter.start()
                    for proc in poll.procs:
                        proc.profile_start()
            done_at = poll.done()
        cpu = meter.stop(poll.expected)
        for proc in poll.procs:
            proc.profile_stop()
    finally:
        consumer.close()
    return done_at, cpu


def drain(bootstrap: str, starts: dict[str, dict[int, int]], tally: OutputTally) -> None:
    """Count again from the start, with what the last events wrote (until 2 s idle)."""
    tail = assigned_consumer(bootstrap, starts)
    try:
        tally.counts = Counter()
        tally.notified = {}
        drain_deadline = time.monotonic() + 15
        idle_since = time.monotonic()
        while time.monotonic() < drain_deadline and time.monotonic() - idle_since < 2.0:
            batch = tail.consume(num_messages=5000, timeout=0.2)
            if batch:
                idle_since = time.monotonic()
            for message in batch:
                tally.see(message)
    finally:
        tail.close()


def measure_worker(bootstrap: str, proc: Subprocess, expected: int, citizens: set[str],
                   starts: dict[str, dict[int, int]], timeout: float) -> dict[str, Any]:
    """Throughput of the running worker on its preloaded backlog (see the module's doc)."""
    repartition = f"{proc.name}-citizen-events"
    changelog = f"{proc.name}-citizens-changelog"
    tally = OutputTally({repartition, changelog}, citizens)
    poll = MetricsPoll([proc], expected, spawned=time.time())
    done_at, cpu = watch_until_done(bootstrap, starts, tally, poll, timeout)
    drain(bootstrap, starts, tally)
    first_ts, last_ts, counts = tally.first_ts, tally.last_ts, tally.counts
    seconds = max(max(last_ts.values()) - first_ts, 1e-3)
    engine_seconds = poll.metrics.get("engine_seconds", 0.0)
    return {
        "events": expected,
        "seconds": round(seconds, 3),
        "events_per_s": round(expected / seconds),
        "seen_done_after_s": round(done_at - first_ts, 3),
        "startup_s": round(first_ts - poll.spawned, 2),
        "direct": poll.metrics.get("direct", 0.0),
        "repartitioned": poll.metrics.get("repartitioned", 0.0),
        "repartition_records": counts[repartition],
        "changelog_records": counts[changelog],
        "notifications": counts[NOTIFICATIONS],
        "audit_records": counts[AUDIT],
        "engine_seconds_in_worker": round(engine_seconds, 3),
        "engine_share_of_wall": round(engine_seconds / seconds, 3),
        "cpu": cpu,
        "metrics": poll.metrics,
        "timeline": poll.timeline,
    }


def prepare_group(bootstrap: str, app_id: str,
                  case_start: dict[int, int]) -> dict[str, dict[int, int]]:
    """A fresh worker group: its topics made, its case-events offsets at ``case_start``.

    Returns where the output tally starts reading: the group's own topics from
    the beginning, notifications and audit from their ends now.
    """
    repartition, changelog = f"{app_id}-citizen-events", f"{app_id}-citizens-changelog"
    create_topics(bootstrap, [repartition])
    create_topics(bootstrap, [changelog], config={"cleanup.policy": "compact"})
    commit_offsets(bootstrap, app_id, CASE_EVENTS, case_start)
    return {repartition: dict.fromkeys(range(PARTITIONS), 0),
            changelog: dict.fromkeys(range(PARTITIONS), 0),
            NOTIFICATIONS: end_offsets(kafka_at(bootstrap), NOTIFICATIONS),
            AUDIT: end_offsets(kafka_at(bootstrap), AUDIT)}


def bench_worker(bootstrap: str, stream: Stream, key: str, case_start: dict[int, int],
                 triggers: list[Prepared], workdir: Path, args: argparse.Namespace,
                 profile_to: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    app_id = f"bench-worker-{uuid.uuid4().hex[:8]}"
    expected = sum(len(p.citizens) for p in stream.events)
    # Later runs on the same preload also meet the latency triggers published by the first.
    expected += sum(len(p.citizens) for p in triggers) * args.triggers_published
    citizens = set(stream.pseudonyms.values())
    starts = prepare_group(bootstrap, app_id, case_start)
    proc = worker_process(bootstrap, app_id, workdir, key, profile_to, extra_env)
    result: dict[str, Any] = {"app_id": app_id}
    with cleanup(lambda: delete_app_topics(bootstrap, app_id)), running(proc):
        result["throughput"] = measure_worker(bootstrap, proc, expected, citizens, starts,
                                              args.timeout)
        wait_until_idle(kafka_at(bootstrap), app_id, [CASE_EVENTS, f"{app_id}-citizen-events"],
                        timeout=120)
        if profile_to is None and triggers:
            proc.wait_ready(60)
            if args.triggers_published:  # a variant: the same triggers again, under new ids
                days = 30 * args.triggers_published
                triggers = [Prepared(t.key, retag(t.value, event_id, days), event_id, t.citizens)
                            for t in triggers for event_id in [str(uuid.uuid4())]]
            result["latency"] = measure_latency(bootstrap, proc, triggers, args.latency_rate,
                                                timeout=30, warmup_topic=args.warmup_topic)
            args.triggers_published += 1
    return result

"""Throughput and latency of the advisory pipeline, against its own baselines.

Measured in one run on one broker, on the same PRELOADED synthetic events:

1. engine   the pure engine on one core, no Kafka, as the correlate hop runs
            it: decode (CaseEvent.model_validate_json; intake validated the
            event), process (the real rules of rules/ and topics/), orjson of
            the notifications. Beside it: intake validation + engine
            (decode_event with the CPR ban and the vocabulary), and the
            worker's own per-record steps.
2. raw      a confluent-kafka consume -> produce loop over the preloaded topic.
3. faust    a bare Faust passthrough (benchmarks/faust_passthrough.py) run as a
            real worker subprocess: one agent, ``await topic.send`` per record,
            Faust's defaults.
4. bus      `advisering worker` end to end on advisering.case-events (events/s),
            then, caught up, publish-to-notification latency (p50/p99).

Passthrough and bus alternate for --rounds rounds, each preceded by an engine
pass. The targets are judged on paired ratios, the median over the rounds of
(engine pass / the passthrough run next to it) and (bus run / the passthrough
run before it): on a shared host the speed drifts by tens of per cent within
minutes, and a pair is measured seconds apart. Best-versus-best is printed too.

Usage (a broker of your own; topics applied):

    ADVISERING_KAFKA_PORT=49092 .venv/bin/advisering kafka start --fresh
    ADVISERING_KAFKA_PORT=49092 ADVISERING_BOOTSTRAP_SERVERS=127.0.0.1:49092 \
        .venv/bin/advisering topics apply --replication-factor 1
    .venv/bin/python benchmarks/pipeline.py --bootstrap 127.0.0.1:49092 --events 20000
    .venv/bin/python benchmarks/pipeline.py --bootstrap 127.0.0.1:49092 --events 20000 --profile

Writes benchmarks/results/pipeline-latest.json. Every wait has a timeout.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import orjson
from common import (
    PROFILE_START,
    ROOT,
    ChildProcess,
    advisering_env,
    broker_pid,
    child_env,
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
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka import __version__ as confluent_version
from confluent_kafka.admin import AdminClient, NewTopic

from advisering.broker.topic_specs import AUDIT, CASE_EVENTS, NOTIFICATIONS
from advisering.cli_pipeline import load_matcher_and_vocabulary
from advisering.edge import prepare_event
from advisering.engine.evaluate import process
from advisering.engine.event import EngineEvent
from advisering.engine.trusted import decode_validated
from advisering.events import (
    CaseEvent,
    Rejection,
    Vocabulary,
    decode_event,
    encode_event,
    validate_event,
)
from advisering.grants import GrantCheck, Grants
from advisering.scenario import event as scenario_event
from advisering.scenario import synthetic_cpr
from advisering.settings import Settings
from advisering.testing import end_offsets, wait_until_idle
from advisering.web.sources import add_source
from advisering.worker import steps, tally

RESULTS = ROOT / "benchmarks" / "results" / "pipeline-latest.json"
PASSTHROUGH_APP = ROOT / "benchmarks" / "faust_passthrough.py"
PARTITIONS = 6  # as advisering.case-events and the worker's default
TZ = dt.timezone(dt.timedelta(hours=1))
STREAM_START = dt.datetime(2026, 11, 2, 8, 0, tzinfo=TZ)
STEP = dt.timedelta(seconds=30)  # event-time spacing: 20,000 events span a week


# ---------------------------------------------------------------------------
# The synthetic municipality
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Department:
    name: str
    source: str
    prefix: str
    kles: tuple[str, ...]
    units: tuple[str, ...]
    caseworker: str | None  # caseworker id prefix; None: the unit gets the notification
    weight: int


DEPARTMENTS = (
    Department("jobcenter", "momentum", "MOM", ("32.24.06", "15.20.00"),
               ("jobcenter-nord", "jobcenter-syd"), "jc", 30),
    Department("ydelse", "kmd-ydelse", "KY", ("32.24.02", "32.18.00"), ("ydelse-central",),
               "yd", 20),
    Department("boern-familie", "dubu", "DUBU", ("34.15.00", "34.03.00"), ("bf-syd", "bf-nord"),
               "bf", 15),
    Department("aeldre", "nexus", "CARE", ("27.36.04", "27.36.00"),
               ("hjemmepleje-vest", "hjemmepleje-oest"), "hp", 15),
    Department("handicap-psykiatri", "sensum", "SP", ("27.12.00",), ("socialpsykiatri",),
               "sp", 8),
    Department("sundhed", "sundhed", "SUND", ("29.30.00",), ("genoptraening",), "su", 7),
    Department("skole", "elevsag", "SKOLE", ("17.07.00",), ("pps",), None, 5),
)
BY_NAME = {d.name: d for d in DEPARTMENTS}
# What each source may publish (the sources file the worker checks every event against).
GRANTS = {
    **{d.source: Grants(types=("case.*", "document.*", "benefit.*", "appointment.*"),
                        departments=(d.name,)) for d in DEPARTMENTS},
    "cpr": Grants(types=("citizen.moved", "citizen.deceased")),
    "sundhedsplatformen": Grants(types=("citizen.admitted", "citizen.discharged")),
}
# What happens after the cases are open: mostly events no rule cares about.
TRIGGERS = (
    ("document.added", 28), ("case.status-changed", 20), ("benefit.changed", 20),
    ("appointment.missed", 10), ("citizen.admitted", 7), ("citizen.discharged", 5),
    ("citizen.moved", 5), ("case.closed", 4), ("citizen.deceased", 1),
)
BENEFIT_ACTIONS = (("sanctioned", 25), ("stopped", 15), ("granted", 35), ("reduced", 25))
NEXT_STATUS = {"opstaaet": "oplyst", "oplyst": "afgjort", "afgjort": "afgjort"}


@dataclass
class Citizen:
    number: int
    cpr: str
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # open cases by department


@dataclass
class Prepared:
    key: bytes
    value: bytes
    event_id: str
    citizens: tuple[str, ...]


@dataclass
class Stream:
    events: list[Prepared]
    citizens: list[Citizen]
    pseudonyms: dict[int, str]
    counts: Counter[str]
    end: dt.datetime


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    names, weights = zip(*weighted, strict=True)
    return rng.choices(names, weights=weights)[0]


class Generator:
    """Builds raw source-system events (CPR parties) and prepares them at the edge."""

    def __init__(self, rng: random.Random, key: bytes, vocabulary: Vocabulary) -> None:
        self.rng = rng
        self.key = key
        self.vocabulary = vocabulary
        self.seq = 0
        self.case_seq = 0
        self.run = uuid.uuid4().hex[:6].upper()
        self.pseudonyms: dict[int, str] = {}

    def new_case(self, department: Department) -> dict[str, Any]:
        self.case_seq += 1
        rng = self.rng
        case: dict[str, Any] = {
            "id": f"{department.prefix}-{self.run}-{self.case_seq:07d}",
            "kle": rng.choice(department.kles),
            "status": rng.choice(("opstaaet", "oplyst", "afgjort")),
            "department": department.name,
            "unit": rng.choice(department.units),
            "sensitivity": "fortrolige",
        }
        if department.caseworker:
            case["caseworker"] = f"{department.caseworker}-{rng.randrange(1, 400):04d}"
        if department.name == "handicap-psykiatri" and rng.random() < 0.5:
            case["sensitivity"] = "foelsomme"
        elif department.name in ("skole", "sundhed") and rng.random() < 0.3:
            case["sensitivity"] = "ikke-fortrolige"
        return case

    def prepare(self, citizen: Citizen, source: str, event_type: str, when: dt.datetime,
                case: dict[str, Any] | None = None, **extra: Any) -> Prepared:
        self.seq += 1
        raw = scenario_event(self.seq, source, event_type, when, citizen.cpr,
                             dict(case) if case else None, **extra)
        raw["id"] = str(uuid.uuid4())  # unique across runs: latency is matched on it
        prepared = prepare_event(raw, self.key, self.vocabulary)
        if isinstance(prepared, Rejection):
            raise RuntimeError(f"synthetic event rejected: {prepared}")
        pseudonym = prepared.data.parties[0].citizen
        self.pseudonyms[citizen.number] = pseudonym
        return Prepared(prepared.key.encode(), encode_event(prepared), prepared.id,
                        tuple(p.citizen for p in prepared.data.parties))

    def trigger(self, citizen: Citizen, kind: str, when: dt.datetime) -> tuple[str, Prepared]:
        """One event of ``kind`` (or a fallback that fits the citizen's cases)."""
        rng = self.rng
        cases = citizen.cases
        if kind == "benefit.changed":
            departments = [d for d in ("jobcenter", "ydelse") if d in cases]
            if departments:
                case = cases[rng.choice(departments)]
                action = _pick(rng, BENEFIT_ACTIONS)
                return kind, self.prepare(citizen, BY_NAME[case["department"]].source, kind,
                                          when, case, benefit={"action": action})
            kind = "document.added"
        if kind == "appointment.missed":
            if "jobcenter" in cases:
                return kind, self.prepare(citizen, "momentum", kind, when, cases["jobcenter"],
                                          appointment={"kind": "samtale"})
            kind = "document.added"
        if kind in ("document.added", "case.status-changed", "case.closed"):
            if not cases:
                kind = "citizen.moved"
            else:
                department = rng.choice(sorted(cases))
                case = dict(cases[department])
                source = BY_NAME[department].source
                if kind == "case.status-changed":
                    case["previous_status"] = case["status"]
                    case["status"] = NEXT_STATUS[case["status"]]
                    cases[department] = {k: v for k, v in case.items() if k != "previous_status"}
                elif kind == "case.closed":
                    case["previous_status"] = case["status"]
                    case["status"] = "afsluttet"
                    del cases[department]
                return kind, self.prepare(citizen, source, kind, when, case)
        source = {"citizen.admitted": "sundhedsplatformen",
                  "citizen.discharged": "sundhedsplatformen"}.get(kind, "cpr")
        return kind, self.prepare(citizen, source, kind, when)


def build_stream(n_events: int, n_citizens: int, key: bytes, vocabulary: Vocabulary,
                 seed: int) -> Stream:
    """Cases opened for every citizen (1-3 departments each), then happenings."""
    rng = random.Random(seed)
    gen = Generator(rng, key, vocabulary)
    offset = rng.randrange(0, 5000)  # other CPR numbers (and pseudonyms) each run
    citizens = [Citizen(n, synthetic_cpr(offset + n)) for n in range(n_citizens)]
    openings: list[tuple[Citizen, dict[str, Any]]] = []
    names = [d.name for d in DEPARTMENTS]
    weights = [d.weight for d in DEPARTMENTS]
    for citizen in citizens:
        wanted = rng.choices((1, 2, 3), weights=(45, 35, 20))[0]
        chosen: list[str] = []
        while len(chosen) < wanted:
            name = rng.choices(names, weights=weights)[0]
            if name not in chosen:
                chosen.append(name)
        for name in chosen:
            case = gen.new_case(BY_NAME[name])
            citizen.cases[name] = case
            openings.append((citizen, case))
    rng.shuffle(openings)
    events: list[Prepared] = []
    counts: Counter[str] = Counter()
    when = STREAM_START
    for citizen, case in openings[:n_events]:
        events.append(gen.prepare(citizen, BY_NAME[case["department"]].source, "case.opened",
                                  when, case))
        counts["case.opened"] += 1
        when += STEP
    trigger_kinds = tuple(TRIGGERS)
    while len(events) < n_events:
        citizen = rng.choice(citizens)
        kind, prepared = gen.trigger(citizen, _pick(rng, trigger_kinds), when)
        events.append(prepared)
        counts[kind] += 1
        when += STEP
    return Stream(events, citizens, gen.pseudonyms, counts, when)


def latency_triggers(stream: Stream, count: int, key: bytes, vocabulary: Vocabulary,
                     seed: int) -> list[Prepared]:
    """Events that each fire at least one rule: distinct citizens, time far past the stream."""
    rng = random.Random(seed + 1)
    gen = Generator(rng, key, vocabulary)
    when = stream.end + dt.timedelta(days=60)
    candidates = [c for c in stream.citizens if c.cases]
    rng.shuffle(candidates)
    triggers: list[Prepared] = []
    for citizen in candidates[:count]:
        cases = citizen.cases
        aeldre = cases.get("aeldre")
        if aeldre is not None and aeldre["kle"].startswith("27.36"):
            triggers.append(gen.prepare(citizen, "sundhedsplatformen", "citizen.admitted", when))
        elif "jobcenter" in cases and "boern-familie" in cases:
            triggers.append(gen.prepare(citizen, "momentum", "benefit.changed", when,
                                        cases["jobcenter"], benefit={"action": "sanctioned"}))
        else:
            triggers.append(gen.prepare(citizen, "cpr", "citizen.moved", when))
        when += dt.timedelta(minutes=1)
    return triggers


# ---------------------------------------------------------------------------
# 1. The engine alone (and the worker's own steps), one core, no Kafka
# ---------------------------------------------------------------------------

def engine_decode(payload: bytes | None, _vocabulary: Vocabulary) -> EngineEvent | Rejection:
    """The engine's decode, as the correlate hop does it (intake validated the event)."""
    return decode_validated(payload or b"")


def engine_pass(payloads: list[bytes], matcher: Any, vocabulary: Vocabulary,
                decode: Callable[[bytes | None, Vocabulary], EngineEvent | Rejection]
                = engine_decode) -> dict[str, int]:
    """decode -> overview + rules -> orjson notifications, over the whole stream.

    With ``decode=decode_event`` it includes the intake's validation as well
    (the CPR ban and the vocabulary): one core's work for an event across
    both hops, Faust aside.
    """
    states: dict[str, Any] = {}
    created = tally.now_iso()
    notifications = 0
    encoded_bytes = 0
    for payload in payloads:
        event = decode(payload, vocabulary)
        if isinstance(event, Rejection):
            raise RuntimeError(f"engine bench: event rejected: {event}")
        parties = event.data.parties
        citizens = ((parties[0].citizen,) if len(parties) == 1
                    else dict.fromkeys(party.citizen for party in parties))
        for citizen in citizens:
            outcome = process(states.get(citizen), event, citizen, matcher, created)
            if outcome.state.is_empty():
                states.pop(citizen, None)
            else:
                states[citizen] = outcome.state
            for notification in outcome.notifications:
                encoded_bytes += len(orjson.dumps(notification))
                notifications += 1
    return {"notifications": notifications, "notification_bytes": encoded_bytes,
            "citizens_in_state": len(states)}


def steps_pass(payloads: list[bytes], matcher: Any, vocabulary: Vocabulary,
               changelog: bool) -> dict[str, int]:
    """What the worker's agents run per record, minus Faust: intake + correlate (+ changelog)."""
    states: dict[bytes, Any] = {}
    notifications = 0
    grants = GrantCheck(GRANTS)
    for offset, payload in enumerate(payloads):
        box = steps.intake(payload, vocabulary, grants=grants, topic=CASE_EVENTS, partition=0,
                           offset=offset, now=tally.now_iso())
        tally.record(box.counts)
        for key, value in box.citizen_events:
            state, out = steps.correlate(key.decode(), value, states.get(key), matcher,
                                         now=tally.now_iso())
            tally.record(out.counts)
            notifications += len(out.notifications)
            if state.is_empty():
                states.pop(key, None)
            else:
                states[key] = state
                if changelog:  # the table's changelog record (CitizenStateCodec)
                    orjson.dumps(state.to_json())
    return {"notifications": notifications}


def timed(passes: dict[str, Callable[[], dict[str, int]]], events: int,
          repeats: int) -> dict[str, dict[str, Any]]:
    """Best of ``repeats`` rounds of every pass, by wall time and by this process's CPU time.

    The passes take turns within each round, so a busy moment on a shared host
    hits them alike; the best of the rounds is the closest to a quiet core.
    """
    best = dict.fromkeys(passes, float("inf"))
    best_cpu = dict.fromkeys(passes, float("inf"))
    results: dict[str, dict[str, int]] = {}
    for _ in range(repeats):
        for name, fn in passes.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - began)
            best_cpu[name] = min(best_cpu[name], time.process_time() - began_cpu)
    return {name: {"events": events, "seconds": round(best[name], 4),
                   "events_per_s": round(events / best[name]),
                   "us_per_event": round(best[name] / events * 1e6, 2),
                   "events_per_cpu_s": round(events / best_cpu[name]),
                   "cpu_us_per_event": round(best_cpu[name] / events * 1e6, 2),
                   **results[name]}
            for name in passes}


def profile_text(profile: cProfile.Profile, sort: str, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    return out.getvalue()


def bench_engine(stream: Stream, matcher: Any, vocabulary: Vocabulary, repeats: int,
                 profile: bool) -> dict[str, Any]:
    payloads = [p.value for p in stream.events]
    n = len(payloads)
    result: dict[str, Any] = timed({
        "engine": lambda: engine_pass(payloads, matcher, vocabulary),
        "validation_and_engine": lambda: engine_pass(payloads, matcher, vocabulary, decode_event),
        "decode_only": lambda: {"decoded": sum(
            1 for p in payloads if isinstance(decode_event(p, vocabulary), CaseEvent))},
        "decode_with_full_cpr_walk": lambda: {"decoded": sum(
            1 for p in payloads if isinstance(validate_event(orjson.loads(p), vocabulary),
                                               CaseEvent))},
        "worker_steps": lambda: steps_pass(payloads, matcher, vocabulary, False),
        "worker_steps_with_changelog": lambda: steps_pass(payloads, matcher, vocabulary, True),
    }, n, repeats)
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        steps_pass(payloads, matcher, vocabulary, True)
        prof.disable()
        text = profile_text(prof, "tottime", 25)
        result["profile_worker_steps_top"] = text
        print("\n--- cProfile: worker steps (intake + correlate + changelog), by tottime ---")
        print(text)
    return result


# ---------------------------------------------------------------------------
# Kafka helpers
# ---------------------------------------------------------------------------

def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS,
                  config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = config or {"cleanup.policy": "delete", "retention.ms": str(86400 * 1000)}
    new = [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)
           for name in names]
    for name, future in admin.create_topics(new, operation_timeout=30).items():
        try:
            future.result(timeout=60)
        except Exception as exc:
            error = exc.args[0] if exc.args else None
            if getattr(error, "code", lambda: None)() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"cannot create topic {name}: {exc}") from exc


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(names, operation_timeout=30).values():
        try:
            future.result(timeout=60)
        except Exception as exc:  # best effort: a benchmark's leftovers
            log(f"  (could not delete a topic: {exc})")


def delete_app_topics(bootstrap: str, app_id: str) -> None:
    """Drop a finished worker's internal topics (repartition, changelog, Faust's own)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{app_id}-")]
    if names:
        delete_topics(bootstrap, names)


def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
                timeout: float = 120.0) -> float:
    """Produce (key, value) records, wait for every acknowledgement; returns seconds.

    Keys are partitioned with murmur2 as the Java client and aiokafka (Faust) do.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                         "enable.idempotence": True, "compression.type": "none",
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 500000,
                         "partitioner": "murmur2_random"})
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    began = time.perf_counter()
    deadline = time.monotonic() + timeout
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"producing to {topic} timed out") from None
        producer.poll(0)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    if remaining or failures:
        raise RuntimeError(f"preload to {topic}: {remaining} unconfirmed, failures {failures[:3]}")
    return time.perf_counter() - began


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Start consumer group ``group`` at ``offsets`` (so reruns skip older records)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                        asynchronous=False)
    finally:
        consumer.close()


def assigned_consumer(bootstrap: str, starts: dict[str, dict[int, int]]) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap,
                         "group.id": f"bench-watch-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 20})
    consumer.assign([TopicPartition(topic, p, o) for topic, offsets in starts.items()
                     for p, o in offsets.items()])
    return consumer


# ---------------------------------------------------------------------------
# Worker subprocesses
# ---------------------------------------------------------------------------

@dataclass
class Subprocess(ChildProcess):
    HTTP_TIMEOUT = 2.0
    STOP_TIMEOUT = 60.0

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    web_port: int
    profile_to: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    profiling: bool = False

    @property
    def label(self) -> str:
        return self.name

    @property
    def http_port(self) -> int:
        return self.web_port

    def start(self) -> None:
        with self.log_path.open("ab") as handle:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=handle,
                                            stderr=subprocess.STDOUT, cwd=ROOT)

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.process.pid) if self.process is not None else None

    def profile_start(self) -> None:
        if self.profile_to is not None and self.process is not None and not self.profiling:
            self.process.send_signal(PROFILE_START)
            self.profiling = True

    def profile_stop(self, timeout: float = 60.0) -> None:
        if self.profiling:
            self.profiling = False
            self.write_profile(timeout, poll=0.5)


@contextmanager
def cleanup(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` on the way out (after the worker inside has stopped)."""
    try:
        yield
    finally:
        action()


def cpu_seconds(pid: int | None, thread: int | None = None) -> float | None:
    """User + system CPU seconds of a process (all threads), or of one of its threads."""
    if pid is None:
        return None
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    return stat_cpu_seconds(Path(path))


@dataclass
class CpuMeter:
    """CPU between start() and stop(): the measured process, the broker, this script, the host.

    ``process_runqueue_wait`` is the share of the wall time the process's main
    thread (the event loop) was runnable but not running: waiting for a CPU
    that others held. ``others_cores`` is what the rest of the machine used.
    """

    pids: dict[str, int | None]
    began: dict[str, float | None] = field(default_factory=dict)
    began_host: tuple[float, float] = (0.0, 0.0)
    began_wait: float | None = None
    wall: float = 0.0

    def _snapshot(self) -> dict[str, float | None]:
        pids = dict(self.pids, bench=os.getpid())
        found = {name: cpu_seconds(pid) for name, pid in pids.items()}
        process = self.pids.get("process")
        if process is not None:  # the event loop's own thread (the rest: librdkafka, GC...)
            found["process_main_thread"] = cpu_seconds(process, process)
        return found

    def start(self) -> None:
        self.began = self._snapshot()
        self.began_host = host_cpu()
        self.began_wait = runqueue_wait(self.pids.get("process"))
        self.wall = time.monotonic()

    def stop(self, events: int) -> dict[str, Any]:
        wall = max(time.monotonic() - self.wall, 1e-6)
        now = self._snapshot()
        busy, total = (a - b for a, b in zip(host_cpu(), self.began_host, strict=True))
        cores = os.cpu_count() or 1
        host_busy = busy / total * cores if total > 0 else 0.0
        out: dict[str, Any] = {"wall_s": round(wall, 3), "host_busy_cores": round(host_busy, 2),
                               "host_cores": cores}
        mine = 0.0
        for name in now:
            if now[name] is None or self.began.get(name) is None:
                continue
            used = float(now[name] or 0.0) - float(self.began[name] or 0.0)
            mine += used if name != "process_main_thread" else 0.0
            out[f"{name}_cpu_s"] = round(used, 3)
            out[f"{name}_cpu_util"] = round(used / wall, 2)
            out[f"{name}_cpu_us_per_event"] = round(used / events * 1e6, 1)
        out["others_cores"] = round(max(0.0, host_busy - mine / wall), 2)
        waited = runqueue_wait(self.pids.get("process"))
        if waited is not None and self.began_wait is not None:
            out["process_runqueue_wait"] = round((waited - self.began_wait) / wall, 3)
        return out


def wait_for_quiet(pid: int | None, busy: float = 0.15, timeout: float = 15.0) -> None:
    """Wait (at most ``timeout``) until ``pid`` uses under ``busy`` of a core for 0.5 s."""
    deadline = time.monotonic() + timeout
    while pid is not None and time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        after = cpu_seconds(pid)
        if before is None or after is None or (after - before) / 0.5 < busy:
            return


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return (0.0, 0.0)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle, sum(fields[:8]))


def runqueue_wait(pid: int | None) -> float | None:
    """Seconds the main thread of ``pid`` spent runnable but waiting for a CPU."""
    if pid is None:
        return None
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


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


def passthrough_process(bootstrap: str, app_id: str, workdir: Path, topic_in: str,
                        topic_out: str, profile_to: Path | None = None,
                        extra_env: dict[str, str] | None = None) -> Subprocess:
    port = free_port()
    env = child_env({"BENCH_APP_ID": app_id, "BENCH_BOOTSTRAP": bootstrap, "BENCH_IN": topic_in,
                     "BENCH_OUT": topic_out, "BENCH_WEB_PORT": str(port),
                     "BENCH_DATA_DIR": str(workdir / f"{app_id}-data"),
                     "BENCH_PARTITIONS": str(PARTITIONS), **(extra_env or {})})
    argv = python_argv(profile_to, str(PASSTHROUGH_APP))
    return Subprocess(app_id, argv, env, workdir / f"{app_id}.log", port, profile_to)


# ---------------------------------------------------------------------------
# 2. Raw confluent-kafka loop
# ---------------------------------------------------------------------------

def bench_raw(bootstrap: str, topic_in: str, topic_out: str, n: int,
              timeout: float) -> dict[str, Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap,
                         "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    consumer.subscribe([topic_in])
    meter = CpuMeter({"loop": os.getpid(), "broker": broker_pid(bootstrap)})
    count = 0
    first: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw loop: {count} of {n} records within {timeout}s")
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error():
                    continue
                if first is None:
                    first = time.perf_counter()
                    meter.start()
                while True:
                    try:
                        producer.produce(topic_out, key=message.key(), value=message.value())
                        break
                    except BufferError:
                        producer.poll(0.01)
                count += 1
            producer.poll(0)
        remaining = producer.flush(max(1.0, deadline - time.monotonic()))
        if remaining:
            raise TimeoutError(f"raw loop: {remaining} records unconfirmed")
        assert first is not None
        seconds = time.perf_counter() - first
        cpu = meter.stop(count)
    finally:
        consumer.close()
    return {"events": count, "seconds": round(seconds, 3), "events_per_s": round(count / seconds),
            "cpu": cpu}


# ---------------------------------------------------------------------------
# 3. Bare Faust passthrough
# ---------------------------------------------------------------------------

def watch_output(bootstrap: str, topic: str, n: int, proc: Subprocess,
                 timeout: float) -> dict[str, Any]:
    """Wait until ``topic`` has ``n`` records; rate from the first to the last CreateTime."""
    consumer = assigned_consumer(bootstrap, {topic: dict.fromkeys(range(PARTITIONS), 0)})
    meter = CpuMeter({"process": proc.process.pid if proc.process else None,
                      "broker": broker_pid(bootstrap)})
    count = 0
    first_ts = float("inf")
    last_ts = 0.0
    spawned = time.time()
    deadline = time.monotonic() + timeout
    try:
        while count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.name}: {count} of {n} records within {timeout}s\n"
                                   f"{proc.log_tail()}")
            proc.check_alive()
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                if message.error():
                    continue
                if count == 0:
                    meter.start()
                    proc.profile_start()
                count += 1
                stamp = message.timestamp()[1] / 1000.0
                first_ts = min(first_ts, stamp)
                last_ts = max(last_ts, stamp)
        cpu = meter.stop(count)
        proc.profile_stop()
    finally:
        consumer.close()
    seconds = max(last_ts - first_ts, 1e-3)
    return {"events": count, "seconds": round(seconds, 3), "events_per_s": round(count / seconds),
            "startup_s": round(first_ts - spawned, 2), "cpu": cpu}


def bench_passthrough(bootstrap: str, topic_in: str, n: int, workdir: Path, timeout: float,
                      profile_to: Path | None = None,
                      extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    topic_out = f"bench-faust-out-{suffix}"
    create_topics(bootstrap, [topic_out])
    proc = passthrough_process(bootstrap, f"bench-passthrough-{suffix}", workdir, topic_in,
                               topic_out, profile_to, extra_env)
    try:
        with running(proc):
            result = watch_output(bootstrap, topic_out, n, proc, timeout)
    finally:
        delete_topics(bootstrap, [topic_out])
        delete_app_topics(bootstrap, proc.name)
    result["topic_out"] = topic_out
    return result


# ---------------------------------------------------------------------------
# 4. The advisering worker end to end
# ---------------------------------------------------------------------------

def parse_metrics(text: str) -> dict[str, float]:
    wanted = {
        "advisering_processing_seconds_count": "correlated",
        "advisering_processing_seconds_sum": "engine_seconds",
        'advisering_events_processed_total{outcome="accepted"}': "accepted",
        'advisering_events_processed_total{outcome="dead_lettered"}': "dead_lettered",
    }
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            found[wanted[name]] = float(value)
    emitted = sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                  if line.startswith("advisering_notifications_emitted_total{"))
    found["notifications"] = emitted
    return found


def worker_metrics(proc: Subprocess) -> dict[str, float] | None:
    answer = proc.get("/metrics")
    if answer is None or answer[0] != 200:
        return None
    return parse_metrics(answer[1].decode())


def measure_worker(bootstrap: str, proc: Subprocess, expected: int, citizens: set[str],
                   starts: dict[str, dict[int, int]], timeout: float,
                   start_topic: str | None = None) -> dict[str, Any]:
    """Throughput of the running worker on its preloaded backlog.

    Start: the CreateTime of the first record the worker wrote to ``start_topic``
    (by default the repartition topic, where intake writes). End: when the
    worker's own metrics show ``expected`` citizen events through correlate
    (polled every 250 ms, every 50 ms near the end), cross-checked with the
    last CreateTime on the output topics.
    """
    repartition = f"{proc.name}-citizen-events"
    start_topic = start_topic or repartition
    consumer = assigned_consumer(bootstrap, starts)
    meter = CpuMeter({"process": proc.process.pid if proc.process else None,
                      "broker": broker_pid(bootstrap)})
    counts: Counter[str] = Counter()
    first_ts = float("inf")
    last_ts: dict[str, float] = {}
    timeline: list[dict[str, float]] = []
    spawned = time.time()
    done_at: float | None = None
    next_poll = 0.0
    next_sample = 0.0
    metrics: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    try:
        while done_at is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker: {metrics} after {timeout}s (expected {expected})\n"
                                   f"{proc.log_tail()}")
            for message in consumer.consume(num_messages=2000, timeout=0.02):
                if message.error():
                    continue
                topic = str(message.topic())
                stamp = message.timestamp()[1] / 1000.0
                if topic == start_topic:
                    if first_ts == float("inf"):
                        meter.start()
                        proc.profile_start()
                    first_ts = min(first_ts, stamp)
                if topic not in (repartition, start_topic) and orjson.loads(
                        message.value() or b"{}").get("citizen") not in citizens:
                    continue
                counts[topic] += 1
                last_ts[topic] = max(last_ts.get(topic, 0.0), stamp)
            now = time.monotonic()
            if now >= next_poll:
                # /metrics costs the worker a few ms of CPU: poll often only near the end.
                near_end = metrics.get("correlated", 0.0) >= 0.9 * expected
                next_poll = now + (0.05 if near_end else 0.25)
                proc.check_alive()
                metrics = worker_metrics(proc) or metrics
                if now >= next_sample and metrics:
                    next_sample = now + 0.5
                    timeline.append({"t": round(time.time() - spawned, 2),
                                     "intake": metrics.get("accepted", 0.0),
                                     "correlate": metrics.get("correlated", 0.0)})
                if metrics.get("correlated", 0.0) >= expected:
                    done_at = time.time()
        cpu = meter.stop(expected)
        proc.profile_stop()
    finally:
        consumer.close()
    # Drain what the last events wrote (for the counts and the cross-check).
    tail = assigned_consumer(bootstrap, starts)
    try:
        counts = Counter()
        drain_deadline = time.monotonic() + 15
        idle_since = time.monotonic()
        while time.monotonic() < drain_deadline and time.monotonic() - idle_since < 2.0:
            batch = tail.consume(num_messages=5000, timeout=0.2)
            if batch:
                idle_since = time.monotonic()
            for message in batch:
                if message.error():
                    continue
                topic = str(message.topic())
                stamp = message.timestamp()[1] / 1000.0
                if topic not in (repartition, start_topic) and orjson.loads(
                        message.value() or b"{}").get("citizen") not in citizens:
                    continue
                counts[topic] += 1
                last_ts[topic] = max(last_ts.get(topic, 0.0), stamp)
                if topic == start_topic:
                    first_ts = min(first_ts, stamp)
    finally:
        tail.close()
    seconds = done_at - first_ts
    seconds_by_output = max(t for name, t in last_ts.items()
                            if name != repartition or start_topic == repartition) - first_ts
    intake_seconds = last_ts.get(repartition, first_ts) - first_ts
    engine_seconds = metrics.get("engine_seconds", 0.0)
    return {
        "events": expected,
        "seconds": round(seconds, 3),
        "events_per_s": round(expected / seconds),
        "events_per_s_by_last_output": round(expected / max(seconds_by_output, 1e-3)),
        "intake_done_s": round(intake_seconds, 3),
        "startup_s": round(first_ts - spawned, 2),
        "repartition_records": counts[repartition],
        "notifications": counts[NOTIFICATIONS],
        "audit_records": counts[AUDIT],
        "engine_seconds_in_worker": round(engine_seconds, 3),
        "engine_share_of_wall": round(engine_seconds / seconds, 3),
        "cpu": cpu,
        "metrics": metrics,
        "timeline": timeline,
    }


def measure_latency(bootstrap: str, proc: Subprocess, triggers: list[Prepared], rate: float,
                    timeout: float, warmup_topic: str) -> dict[str, Any]:
    """Publish triggers at ``rate``/s; first notification per trigger.event_id is its arrival."""
    consumer = assigned_consumer(bootstrap, {NOTIFICATIONS: end_offsets(bootstrap,
                                                                        NOTIFICATIONS)})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 0})
    # Warm both clients up (metadata, producer id, fetch position) before the clock starts:
    # their own start-up is not the bus's latency.
    producer.list_topics(CASE_EVENTS, timeout=10)
    producer.produce(warmup_topic, value=b"warm-up")
    if producer.flush(10):
        raise TimeoutError("latency producer: warm-up record not confirmed")
    consumer.consume(num_messages=1, timeout=0.5)
    published: dict[str, float] = {}
    arrived: dict[str, float] = {}
    interval = 1.0 / rate
    started = time.time()
    began = time.monotonic()
    index = 0
    deadline = began + len(triggers) * interval + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        if index < len(triggers) and now >= began + index * interval:
            trigger = triggers[index]
            published[trigger.event_id] = time.time()
            producer.produce(CASE_EVENTS, key=trigger.key, value=trigger.value)
            producer.poll(0)
            index += 1
            continue
        if index >= len(triggers) and len(arrived) >= len(triggers):
            break
        wait = min(0.005, max(0.0, began + index * interval - time.monotonic()))
        message = consumer.poll(wait if index < len(triggers) else 0.1)
        producer.poll(0)
        if message is None or message.error():
            continue
        seen = time.time()
        event_id = orjson.loads(message.value() or b"{}").get("trigger", {}).get("event_id")
        if event_id in published and event_id not in arrived:
            arrived[event_id] = seen
        proc.check_alive()
    producer.flush(10)
    consumer.close()
    series = sorted((published[e] - started, (arrived[e] - published[e]) * 1000)
                    for e in arrived)
    latencies = sorted(latency for _, latency in series)
    if not latencies:
        raise RuntimeError(f"no notification for any of {len(triggers)} triggers\n"
                           f"{proc.log_tail()}")
    return {"published": len(published), "notified": len(arrived), "rate_per_s": rate,
            **latency_figures(latencies),
            "series": [[round(t, 3), round(x, 1)] for t, x in series]}


def latency_figures(ordered_ms: list[float]) -> dict[str, Any]:
    """Percentiles, max, mean and count over 100 ms of ascending latencies (ms)."""
    def pct(q: float) -> float:
        return round(ordered_ms[min(len(ordered_ms) - 1, int(q * len(ordered_ms)))], 1)

    return {"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": round(ordered_ms[-1], 1), "mean_ms": round(statistics.mean(ordered_ms), 1),
            "over_100ms": sum(1 for x in ordered_ms if x > 100)}


def pooled_latency(rounds: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Percentiles over the latency samples of every round."""
    samples = sorted(x for r in rounds for _, x in r["series"])
    return {"published": sum(r["published"] for r in rounds),
            "notified": sum(r["notified"] for r in rounds), "rate_per_s": rate,
            **latency_figures(samples), "rounds": rounds}


def retag(value: bytes, event_id: str, days: int) -> bytes:
    """The same trigger under a new id, ``days`` later (past every throttle window)."""
    raw = orjson.loads(value)
    raw["id"] = event_id
    raw["time"] = (dt.datetime.fromisoformat(raw["time"]) + dt.timedelta(days=days)).isoformat()
    return orjson.dumps(raw)


def bench_correlate_only(bootstrap: str, stream: Stream, key: str, workdir: Path,
                         args: argparse.Namespace,
                         profile_to: Path | None = None) -> dict[str, Any]:
    """The real worker with nothing for intake: its repartition topic preloaded instead.

    What is left is the correlate hop alone (table, engine, notifications):
    what the worker would do if intake ran outside Faust.
    """
    app_id = f"bench-correlate-{uuid.uuid4().hex[:8]}"
    repartition, changelog = f"{app_id}-citizen-events", f"{app_id}-citizens-changelog"
    create_topics(bootstrap, [repartition])
    create_topics(bootstrap, [changelog], config={"cleanup.policy": "compact"})
    records = [(citizen.encode(), p.value) for p in stream.events for citizen in p.citizens]
    produce_all(bootstrap, repartition, records)
    commit_offsets(bootstrap, app_id, CASE_EVENTS, end_offsets(bootstrap, CASE_EVENTS))
    starts = {repartition: dict.fromkeys(range(PARTITIONS), 0),
              changelog: dict.fromkeys(range(PARTITIONS), 0),
              NOTIFICATIONS: end_offsets(bootstrap, NOTIFICATIONS),
              AUDIT: end_offsets(bootstrap, AUDIT)}
    proc = worker_process(bootstrap, app_id, workdir, key, profile_to)
    try:
        with running(proc):
            result = measure_worker(bootstrap, proc, len(records),
                                    set(stream.pseudonyms.values()), starts, args.timeout,
                                    start_topic=changelog)
    finally:
        delete_app_topics(bootstrap, app_id)
    result.pop("intake_done_s", None)
    return {"app_id": app_id, "throughput": result}


def bench_worker(bootstrap: str, stream: Stream, key: str, case_start: dict[int, int],
                 triggers: list[Prepared], workdir: Path, args: argparse.Namespace,
                 profile_to: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    app_id = f"bench-worker-{uuid.uuid4().hex[:8]}"
    expected = sum(len(p.citizens) for p in stream.events)
    # Later runs on the same preload also meet the latency triggers published by the first.
    expected += sum(len(p.citizens) for p in triggers) * args.triggers_published
    citizens = set(stream.pseudonyms.values())
    create_topics(bootstrap, [f"{app_id}-citizen-events"])
    commit_offsets(bootstrap, app_id, CASE_EVENTS, case_start)
    starts = {f"{app_id}-citizen-events": dict.fromkeys(range(PARTITIONS), 0),
              NOTIFICATIONS: end_offsets(bootstrap, NOTIFICATIONS),
              AUDIT: end_offsets(bootstrap, AUDIT)}
    proc = worker_process(bootstrap, app_id, workdir, key, profile_to, extra_env)
    result: dict[str, Any] = {"app_id": app_id}
    with cleanup(lambda: delete_app_topics(bootstrap, app_id)), running(proc):
        result["throughput"] = measure_worker(bootstrap, proc, expected, citizens, starts,
                                              args.timeout)
        wait_until_idle(bootstrap, app_id, [CASE_EVENTS, f"{app_id}-citizen-events"],
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


# ---------------------------------------------------------------------------
# Profiles of the two Faust processes, by package
# ---------------------------------------------------------------------------

CATEGORIES = (
    ("/advisering/engine/", "advisering.engine"),
    ("/advisering/worker/", "advisering.worker"),
    ("/advisering/events.py", "advisering.events"),
    ("/advisering/", "advisering (other)"),
    ("/pydantic", "pydantic"),
    ("/prometheus_client/", "prometheus_client"),
    ("/faust/", "faust"),
    ("/mode/", "mode"),
    ("/aiokafka/", "aiokafka"),
    ("/asyncio/", "asyncio"),
    ("/venusian/", "faust"),
    ("/opentracing/", "faust"),
    ("/structlog/", "structlog"),
    ("/logging/", "logging"),
)


# In the builtins ("~"): by the function's name.
BUILTIN_CATEGORIES = (
    ("orjson", "orjson"), ("pydantic_core", "pydantic"), ("validate", "pydantic"),
    ("socket", "socket I/O"), ("recv", "socket I/O"), ("send", "socket I/O"),
)


# Where a worker's tasks spend their time: cumulative seconds of entry points
# (nested ones overlap: the agent bodies include their sends).
ENTRY_POINTS = (
    ("faust/agents/agent.py", "_slurp", "agents: stream iteration + bodies + sends"),
    ("advisering/worker/app.py", "intake", "  intake agent body"),
    ("advisering/worker/app.py", "correlate", "  correlate agent body"),
    ("benchmarks/faust_passthrough.py", "passthrough", "  passthrough agent body"),
    ("advisering/worker/steps.py", "intake", "    steps.intake (validate, CPR scan)"),
    ("advisering/worker/steps.py", "correlate", "    steps.correlate (engine, metrics)"),
    ("advisering/worker/app.py", "send_all", "    send_all (await topic.send)"),
    ("faust/tables/table.py", "on_key_set", "    table write -> changelog"),
    ("mode/utils/logging.py", "debug", "    `yield` in an agent: a debug line formatted"),
    ("prometheus_client/metrics.py", "labels", "    prometheus .labels() lookups"),
    ("faust/topics.py", "send", "    faust Topic.send"),
    ("faust/streams.py", "_c_aiter", "    faust stream iteration"),
    ("faust/transport/consumer.py", "_drain_messages", "faust consumer: fetch -> streams"),
    ("aiokafka/producer/sender.py", "_send_produce_req", "aiokafka: produce requests"),
    ("aiokafka/producer/sender.py", "_sender_routine", "aiokafka: sender loop"),
    ("faust/transport/producer.py", "_handle_pending", "faust producer buffer (send_soon)"),
    ("aiokafka/conn.py", "_read", "aiokafka: socket reads"),
    ("aiohttp/web_protocol.py", "_handle_request", "web (the benchmark's /metrics polls)"),
    ("faust/transport/consumer.py", "_commit_handler", "faust commits"),
)


def entry_points(raw: dict[Any, Any], busy: float) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for (filename, _line, function), (_cc, calls, _tt, cumtime, _callers) in raw.items():
        for suffix, name, label in ENTRY_POINTS:
            if function == name and filename.endswith(suffix):
                row = found.setdefault(label, {"seconds": 0.0, "calls": 0})
                row["seconds"] += cumtime
                row["calls"] += calls
    order = [label for _, _, label in ENTRY_POINTS]
    return {label: {"seconds": round(found[label]["seconds"], 3),
                    "share_of_busy": round(found[label]["seconds"] / busy, 3),
                    "calls": int(found[label]["calls"])}
            for label in order if label in found}


def summarise_profile(path: Path, top: int, events: int) -> dict[str, Any]:
    read = read_profile(
        path, CATEGORIES, BUILTIN_CATEGORIES, top,
        r"advisering|faust/(topics|streams|tables|agents)|aiokafka/(producer|consumer)")
    busy = read.busy
    table = {name: {"seconds": round(sec, 3), "share_of_busy": share_of_busy(name, sec, busy)}
             for name, sec in read.by_category.most_common()}
    return {"events": events, "total_s": round(read.total, 3), "busy_s": round(busy, 3),
            "by_category": table, "by_entry_point": entry_points(read.raw, busy),
            "top_tottime": read.top_tottime, "cumulative_selected": read.cumulative_selected}


def print_profile(title: str, summary: dict[str, Any]) -> None:
    events = summary["events"]
    print(f"\n--- cProfile of {title} while it worked off its backlog: CPU by package "
          f"(busy {summary['busy_s']} s for "
          f"{events} events = {summary['busy_s'] / events * 1e6:.0f} us/event) ---")
    for name, row in summary["by_category"].items():
        print(f"  {name:24s} {row['seconds']:8.3f} s  {share_cell(row)}")
    print("  by entry point (cumulative; indented rows are inside the row above):")
    for name, row in summary["by_entry_point"].items():
        print(f"  {name:48s} {row['seconds']:8.3f} s  {row['share_of_busy']:6.1%}  "
              f"{row['calls']:>8} calls")
    print(summary["top_tottime"])


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--bootstrap", default="127.0.0.1:49092")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--citizens", type=int, default=5000,
                        help="at most this many (never more than events/4)")
    parser.add_argument("--latency-events", type=int, default=400)
    parser.add_argument("--latency-rate", type=float, default=40.0, help="events per second")
    parser.add_argument("--repeats", type=int, default=7, help="engine rounds; best is kept")
    parser.add_argument("--rounds", type=int, default=5,
                        help="passthrough and bus runs, alternating; best is kept (shared host)")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="per Kafka phase, seconds")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the engine, the passthrough and the worker")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=ENV=VALUE[,...]",
                        help="also run passthrough and bus with these Faust settings from the "
                             "environment, e.g. linger5ms=PRODUCER_LINGER=0.005")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.triggers_published = 0
    variants: dict[str, dict[str, str]] = {}
    for spec in args.variant:
        name, _, assignments = spec.partition("=")
        pairs = [a.partition("=") for a in assignments.split(",") if a]
        if not name or not pairs or any(not k or not sep for k, sep, _ in pairs):
            parser.error(f"--variant {spec!r}: use NAME=ENV=VALUE[,ENV=VALUE]")
        variants[name] = {k: v for k, _, v in pairs}
    bootstrap = args.bootstrap
    n = args.events
    if any(bootstrap.endswith(f":{port}") for port in (9092, 29092, 39092, 39192)):
        parser.error("use your own broker (for example 127.0.0.1:49092)")

    settings = Settings(bootstrap_servers=bootstrap, rules_dir=ROOT / "rules",
                        topics_dir=ROOT / "topics")
    matcher, vocabulary = load_matcher_and_vocabulary(settings)
    key = secrets.token_hex(32)
    n_citizens = max(10, min(args.citizens, n // 4))
    log(f"building {n} synthetic events for {n_citizens} citizens "
        f"({len(matcher.compiled)} rules)")
    began = time.perf_counter()
    stream = build_stream(n, n_citizens, key.encode(), vocabulary, args.seed)
    triggers = latency_triggers(stream, args.latency_events, key.encode(), vocabulary,
                                args.seed)
    log(f"  built in {time.perf_counter() - began:.1f}s: {dict(stream.counts.most_common())}")

    results: dict[str, Any] = {
        **run_info("benchmarks/pipeline.py", faust=faust.__version__,
                   confluent_kafka=confluent_version),
        "config": {"events": n, "citizens": n_citizens, "rules": len(matcher.compiled),
                   "partitions": PARTITIONS, "mix": dict(stream.counts.most_common()),
                   "latency_events": len(triggers), "latency_rate": args.latency_rate},
    }

    log("1. engine alone (one core, no Kafka)")
    results["engine"] = bench_engine(stream, matcher, vocabulary, args.repeats, args.profile)
    engine = results["engine"]["engine"]
    log(f"  engine {engine['events_per_s']} ev/s ({engine['us_per_event']} us/event, "
        f"{engine['notifications']} notifications); worker steps "
        f"{results['engine']['worker_steps_with_changelog']['events_per_s']} ev/s")

    workdir = Path(tempfile.mkdtemp(prefix="advisering-bench-"))
    suffix = uuid.uuid4().hex[:8]
    topic_in = f"bench-in-{suffix}"
    topic_raw_out = f"bench-raw-out-{suffix}"
    args.warmup_topic = f"bench-warmup-{suffix}"
    records = [(p.key, p.value) for p in stream.events]
    try:
        log(f"preloading {n} events to {topic_in} and {CASE_EVENTS}")
        create_topics(bootstrap, [topic_in, topic_raw_out, args.warmup_topic])
        case_start = end_offsets(bootstrap, CASE_EVENTS)
        produce_all(bootstrap, topic_in, records)
        produce_all(bootstrap, CASE_EVENTS, records)

        log("2. raw confluent-kafka consume -> produce loop")
        results["raw"] = bench_raw(bootstrap, topic_in, topic_raw_out, n, args.timeout)
        log(f"  raw {results['raw']['events_per_s']} ev/s")

        payloads = [p.value for p in stream.events]
        engine_rounds: list[float] = []

        broker = broker_pid(bootstrap)

        def engine_sample() -> float:
            """One engine pass now: the engine is sampled in the same minutes as Kafka runs.

            "On one core": first the broker's clean-up after the last phase
            (deleted topics, log flushes) is let finish, or the pass would share
            the two cores with it.
            """
            wait_for_quiet(broker)
            began = time.perf_counter()
            engine_pass(payloads, matcher, vocabulary)
            engine_rounds.append(round(n / (time.perf_counter() - began)))
            return engine_rounds[-1]

        def pair(env: dict[str, str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
            """Passthrough and bus, alternating for --rounds rounds; the best round of each.

            An engine pass runs right before each, so on a shared host the engine
            and the two Faust processes are measured over the same stretch of time.
            Each round also gives paired ratios: the engine pass and the bus run
            against the passthrough run next to them (seconds apart, so a host
            that is slower for a while slows both sides of a pair).
            """
            passthroughs: list[dict[str, Any]] = []
            buses: list[dict[str, Any]] = []
            engine_before: list[float] = []
            for number in range(1, args.rounds + 1):
                engine_before.append(engine_sample())
                log(f"  engine pass: {engine_before[-1]} ev/s")
                log(f"3. bare Faust passthrough (worker subprocess), round {number}")
                passthroughs.append(bench_passthrough(bootstrap, topic_in, n, workdir,
                                                      args.timeout, extra_env=env))
                log(f"  passthrough {passthroughs[-1]['events_per_s']} ev/s "
                    f"({cpu_note(passthroughs[-1]['cpu'], 'process')})")
                log(f"  engine pass: {engine_sample()} ev/s")
                log(f"4. advisering worker end to end (worker subprocess), round {number}")
                buses.append(bench_worker(bootstrap, stream, key, case_start, triggers,
                                          workdir, args, extra_env=env))
                round_bus = buses[-1]
                latency = round_bus.get("latency", {})
                log(f"  bus {round_bus['throughput']['events_per_s']} ev/s "
                    f"({cpu_note(round_bus['throughput']['cpu'], 'process')}); latency p50 "
                    f"{latency.get('p50_ms')} ms, p99 {latency.get('p99_ms')} ms")
            best_pass = max(passthroughs, key=lambda r: r["events_per_s"])
            best_bus = max(buses, key=lambda r: r["throughput"]["events_per_s"])
            passthrough = dict(best_pass, rounds=[r["events_per_s"] for r in passthroughs])
            bus = dict(best_bus, rounds=[r["throughput"]["events_per_s"] for r in buses])
            passthrough["paired_engine_over_passthrough"] = [
                round(e / p, 2) for e, p in zip(engine_before, passthrough["rounds"], strict=True)]
            bus["paired_bus_over_passthrough"] = [
                round(b / p, 3) for b, p in zip(bus["rounds"], passthrough["rounds"], strict=True)]
            if triggers:
                bus["latency"] = pooled_latency([r["latency"] for r in buses if "latency" in r],
                                                args.latency_rate)
            return passthrough, bus

        results["faust_passthrough"], results["bus"] = pair(None)
        # The engine figure: the best of the dedicated passes and those between the rounds.
        if max(engine_rounds) > engine["events_per_s"]:
            best = max(engine_rounds)
            engine.update(events_per_s=best, us_per_event=round(1e6 / best, 2),
                          seconds=round(n / best, 4))
        engine["passes_between_rounds"] = engine_rounds

        log("4b. the worker's correlate hop alone (repartition topic preloaded, intake idle)")
        results["bus_correlate_only"] = bench_correlate_only(bootstrap, stream, key, workdir,
                                                             args)
        log(f"  correlate hop alone "
            f"{results['bus_correlate_only']['throughput']['events_per_s']} ev/s "
            f"({cpu_note(results['bus_correlate_only']['throughput']['cpu'], 'process')})")

        for name, env in variants.items():
            log(f"variant {name}: {env}")
            variant: dict[str, Any] = {"env": env}
            variant["faust_passthrough"], variant["bus"] = pair(env)
            variant["bus_over_faust_passthrough"] = round(
                variant["bus"]["throughput"]["events_per_s"]
                / variant["faust_passthrough"]["events_per_s"], 3)
            variant["bus_over_baseline_passthrough"] = round(
                variant["bus"]["throughput"]["events_per_s"]
                / results["faust_passthrough"]["events_per_s"], 3)
            results.setdefault("variants", {})[name] = variant
            log(f"  passthrough {variant['faust_passthrough']['events_per_s']} ev/s, bus "
                f"{variant['bus']['throughput']['events_per_s']} ev/s, latency "
                f"{variant['bus'].get('latency', {}).get('p50_ms')} / "
                f"{variant['bus'].get('latency', {}).get('p99_ms')} ms")

        if args.profile:
            results["profiles"] = {}
            for name, env in [("baseline", None), *variants.items()]:
                log(f"5. profiles, {name} (cProfile slows both; figures above are unprofiled)")
                profile_pass = workdir / f"passthrough-{name}.prof"
                profiled = bench_passthrough(bootstrap, topic_in, n, workdir, args.timeout,
                                             profile_pass, env)
                profile_bus = workdir / f"worker-{name}.prof"
                profiled_bus = bench_worker(bootstrap, stream, key, case_start, triggers,
                                            workdir, args, profile_bus, env)
                bus_events = profiled_bus["throughput"]["events"]
                profiles = {
                    "faust_passthrough": {"events_per_s_profiled": profiled["events_per_s"],
                                          **summarise_profile(profile_pass, 30, n)},
                    "bus": {"events_per_s_profiled":
                            profiled_bus["throughput"]["events_per_s"],
                            **summarise_profile(profile_bus, 40, bus_events)},
                }
                if env is None:
                    profile_correlate = workdir / "worker-correlate-only.prof"
                    profiled_correlate = bench_correlate_only(bootstrap, stream, key, workdir,
                                                              args, profile_correlate)
                    profiles["bus_correlate_only"] = {
                        "events_per_s_profiled":
                        profiled_correlate["throughput"]["events_per_s"],
                        **summarise_profile(profile_correlate, 30,
                                            profiled_correlate["throughput"]["events"])}
                results["profiles"][name] = profiles
                print_profile(f"the Faust passthrough ({name})", profiles["faust_passthrough"])
                print_profile(f"the advisering worker ({name})", profiles["bus"])
                if "bus_correlate_only" in profiles:
                    print_profile("the worker's correlate hop alone",
                                  profiles["bus_correlate_only"])
                print(f"\n--- advisering worker ({name}): cumulative, selected ---")
                print(profiles["bus"]["cumulative_selected"])
    finally:
        delete_topics(bootstrap, [topic_in, topic_raw_out, args.warmup_topic])

    passthrough = results["faust_passthrough"]["events_per_s"]
    results["ratios"] = {
        # The targets are judged on the median of the paired ratios (see pair()).
        "engine_over_faust_passthrough": statistics.median(
            results["faust_passthrough"]["paired_engine_over_passthrough"]),
        "bus_over_faust_passthrough": statistics.median(
            results["bus"]["paired_bus_over_passthrough"]),
        "engine_over_faust_passthrough_best_vs_best": round(
            engine["events_per_s"] / passthrough, 2),
        "bus_over_faust_passthrough_best_vs_best": round(
            results["bus"]["throughput"]["events_per_s"] / passthrough, 3),
        "raw_over_faust_passthrough": round(results["raw"]["events_per_s"] / passthrough, 2),
        "validation_and_engine_over_faust_passthrough": round(
            results["engine"]["validation_and_engine"]["events_per_s"] / passthrough, 2),
        "bus_over_raw": round(results["bus"]["throughput"]["events_per_s"]
                              / results["raw"]["events_per_s"], 4),
    }
    # The same comparison by CPU per event (robust on a shared host: waiting for a CPU
    # that another process holds does not count).
    pass_cpu = results["faust_passthrough"]["cpu"].get("process_cpu_us_per_event")
    bus_cpu = results["bus"]["throughput"]["cpu"].get("process_cpu_us_per_event")
    if pass_cpu and bus_cpu:
        results["ratios_by_cpu_per_event"] = {
            "engine_over_faust_passthrough": round(pass_cpu / engine["cpu_us_per_event"], 2),
            "bus_over_faust_passthrough": round(pass_cpu / bus_cpu, 3),
        }
    results["targets"] = {"engine_over_faust_passthrough": ">= 15",
                          "bus_over_faust_passthrough": ">= 0.8"}
    print_table(results)
    write_results(args.output, results)
    log(f"results written to {args.output}; worker logs in {workdir}")
    if not args.profile:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def engine_note(row: dict[str, Any]) -> str:
    return f"{row['us_per_event']} us/event; {row['cpu_us_per_event']} us CPU/event"


def cpu_note(cpu: dict[str, Any], name: str) -> str:
    if f"{name}_cpu_s" not in cpu:
        return ""
    note = (f"{cpu[f'{name}_cpu_us_per_event']:.0f} us CPU/event, "
            f"{cpu[f'{name}_cpu_util']:.0%} busy")
    if "process_runqueue_wait" in cpu:
        note += f", {cpu['process_runqueue_wait']:.0%} waiting for a CPU"
    if "broker_cpu_util" in cpu:
        note += f"; broker {cpu['broker_cpu_util']:.0%}"
    note += f"; others {cpu['others_cores']:.2f} of {cpu['host_cores']} cores"
    return note


def print_table(results: dict[str, Any]) -> None:
    engine = results["engine"]
    bus = results["bus"]["throughput"]
    rows = [
        ("engine: decode + process + orjson (1 core)", engine["engine"]["events_per_s"],
         engine_note(engine["engine"])),
        ("intake validation + engine (1 core)", engine["validation_and_engine"]["events_per_s"],
         engine_note(engine["validation_and_engine"])),
        ("  decode_event only (intake validation)", engine["decode_only"]["events_per_s"],
         engine_note(engine["decode_only"])),
        ("  decode with the full CPR walk (slow path)",
         engine["decode_with_full_cpr_walk"]["events_per_s"],
         engine_note(engine["decode_with_full_cpr_walk"])),
        ("  worker steps: intake + correlate", engine["worker_steps"]["events_per_s"],
         engine_note(engine["worker_steps"])),
        ("  worker steps + changelog encode",
         engine["worker_steps_with_changelog"]["events_per_s"],
         engine_note(engine["worker_steps_with_changelog"])),
        ("raw confluent-kafka consume -> produce", results["raw"]["events_per_s"],
         cpu_note(results["raw"]["cpu"], "loop")),
        ("bare Faust passthrough (1 agent)", results["faust_passthrough"]["events_per_s"],
         cpu_note(results["faust_passthrough"]["cpu"], "process")),
        ("advisering worker end to end", bus["events_per_s"],
         cpu_note(bus["cpu"], "process")),
        ("  worker, correlate hop alone (intake idle)",
         results["bus_correlate_only"]["throughput"]["events_per_s"],
         cpu_note(results["bus_correlate_only"]["throughput"]["cpu"], "process")),
    ]
    print()
    print(f"{'figure':46s} {'events/s':>10s}  note")
    print("-" * 86)
    for name, value, note in rows:
        print(f"{name:46s} {value:>10,}  {note}")
    latency = results["bus"].get("latency")
    if latency:
        print(f"{'bus latency publish -> notification':46s} {'':>10s}  "
              f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms "
              f"({latency['notified']}/{latency['published']} at {latency['rate_per_s']}/s)")
    print(f"\nbus: throughput by last output record {bus['events_per_s_by_last_output']} ev/s; "
          f"intake done after {bus['intake_done_s']} s of {bus['seconds']} s")
    print(f"bus: {bus['notifications']} notifications, {bus['audit_records']} audit records, "
          f"engine time inside the worker {bus['engine_seconds_in_worker']} s "
          f"({bus['engine_share_of_wall']:.0%} of wall)")
    ratios = results["ratios"]
    paired_engine = results["faust_passthrough"]["paired_engine_over_passthrough"]
    paired_bus = results["bus"]["paired_bus_over_passthrough"]
    print(f"\nengine / faust passthrough = {ratios['engine_over_faust_passthrough']}x "
          f"(target >= 15x; median of the rounds' pairs {paired_engine}; best vs best "
          f"{ratios['engine_over_faust_passthrough_best_vs_best']}x)")
    print(f"bus    / faust passthrough = {ratios['bus_over_faust_passthrough']}x "
          f"(target >= 0.8x; median of the rounds' pairs {paired_bus}; best vs best "
          f"{ratios['bus_over_faust_passthrough_best_vs_best']}x)")
    print(f"raw    / faust passthrough = {ratios['raw_over_faust_passthrough']}x")
    print(f"intake validation + engine / faust passthrough = "
          f"{ratios['validation_and_engine_over_faust_passthrough']}x; "
          f"bus / raw loop = {ratios['bus_over_raw']}x")
    by_cpu = results.get("ratios_by_cpu_per_event")
    if by_cpu:
        print(f"by CPU per event: engine / passthrough = "
              f"{by_cpu['engine_over_faust_passthrough']}x, bus / passthrough = "
              f"{by_cpu['bus_over_faust_passthrough']}x")
    for name, variant in results.get("variants", {}).items():
        latency = variant["bus"].get("latency") or {}
        print(f"variant {name} {variant['env']}: passthrough "
              f"{variant['faust_passthrough']['events_per_s']:,} ev/s, bus "
              f"{variant['bus']['throughput']['events_per_s']:,} ev/s "
              f"(bus / its passthrough {variant['bus_over_faust_passthrough']}x, "
              f"/ baseline passthrough {variant['bus_over_baseline_passthrough']}x), "
              f"latency p50 {latency.get('p50_ms')} ms p99 {latency.get('p99_ms')} ms")


if __name__ == "__main__":
    sys.exit(main())

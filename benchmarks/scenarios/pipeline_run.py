"""The pipeline benchmark's run: scenarios 1-4 on one broker, alternating in rounds.

Each round runs an engine pass, the raw loop, the bare and the batched Faust
passthroughs and the worker, one after another, so on a shared host they
are measured over the same stretch of time; each round gives paired ratios
(see ``measure_rounds``).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from confluent_kafka import __version__ as confluent_version
from harness import ROOT, log
from harness.kafka import PARTITIONS, create_topics, delete_topics, produce_all
from harness.procfs import broker_pid, wait_for_quiet
from harness.results import run_info, write_results

from advisering.kafka.topics import CASE_EVENTS
from advisering.testing import end_offsets, kafka_at
from scenarios.engine import build_inputs, engine_pass, engine_phase, load_engine
from scenarios.latency import pooled_latency
from scenarios.passthrough import bench_passthrough
from scenarios.pipeline_report import TARGETS, cpu_note, print_table, ratios, ratios_by_cpu
from scenarios.raw_loop import bench_raw
from scenarios.synthetic import Prepared, Stream
from scenarios.worker import bench_worker
from scenarios.worker_profile import print_profile, summarise_profile

RESULTS = ROOT / "benchmarks" / "results" / "pipeline-latest.json"


@dataclass
class Run:
    """What the Kafka phases share: the inputs, the topics, the figures so far."""

    args: argparse.Namespace
    variants: dict[str, dict[str, str]]
    key: str
    matcher: Any
    vocabulary: Any
    stream: Stream
    triggers: list[Prepared]
    results: dict[str, Any]
    workdir: Path
    topic_in: str
    topic_raw_out: str = ""
    case_start: dict[int, int] = field(default_factory=dict)
    engine_rounds: list[float] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return str(self.args.bootstrap)

    @property
    def n(self) -> int:
        return len(self.stream.events)

    def engine_sample(self) -> float:
        """One engine pass now: the engine is sampled in the same minutes as Kafka runs.

        "On one core": first the broker's clean-up after the last phase
        (deleted topics, log flushes) is let finish, or the pass would share
        the two cores with it.
        """
        wait_for_quiet(broker_pid(self.bootstrap))
        payloads = [p.value for p in self.stream.events]
        began = time.perf_counter()
        engine_pass(payloads, self.matcher, self.vocabulary)
        self.engine_rounds.append(round(self.n / (time.perf_counter() - began)))
        return self.engine_rounds[-1]

    def worker(self, profile_to: Path | None = None,
               env: dict[str, str] | None = None) -> dict[str, Any]:
        return bench_worker(self.bootstrap, self.stream, self.key, self.case_start,
                            self.triggers, self.workdir, self.args, profile_to, env)

    def passthrough(self, mode: str, profile_to: Path | None = None,
                    env: dict[str, str] | None = None) -> dict[str, Any]:
        return bench_passthrough(self.bootstrap, self.topic_in, self.n, self.workdir,
                                 self.args.timeout, profile_to, env, mode)

    def raw(self) -> dict[str, Any]:
        return bench_raw(self.bootstrap, self.topic_in, self.topic_raw_out, self.n,
                         self.args.timeout)


#: The Faust passthroughs (benchmarks/faust_passthrough.py BENCH_MODE) by results key.
PASSTHROUGHS = {"faust_passthrough": "bare", "faust_batched": "batched"}


def one_round(run: Run, number: int, env: dict[str, str] | None) -> dict[str, Any]:
    """Round ``number``: an engine pass, the raw loop, both passthroughs, the worker."""
    found: dict[str, Any] = {"engine": run.engine_sample()}
    log(f"round {number}: engine pass {found['engine']} ev/s")
    found["raw"] = run.raw()
    log(f"  2. raw JSON loop {found['raw']['events_per_s']} ev/s")
    for name, mode in PASSTHROUGHS.items():
        found[name] = run.passthrough(mode, env=env)
        log(f"  3. Faust passthrough, {mode}: {found[name]['events_per_s']} ev/s "
            f"({cpu_note(found[name]['cpu'], 'process')})")
    bus = found["bus"] = run.worker(env=env)
    latency = bus.get("latency", {})
    log(f"  4. worker end to end {bus['throughput']['events_per_s']} ev/s "
        f"({cpu_note(bus['throughput']['cpu'], 'process')}); "
        f"{bus['throughput']['direct']:.0f} direct, "
        f"{bus['throughput']['repartitioned']:.0f} repartitioned; latency p50 "
        f"{latency.get('p50_ms')} ms, p99 {latency.get('p99_ms')} ms")
    return found


def rate(result: dict[str, Any]) -> float:
    """Events/s of a round's result (the worker's is under ``throughput``)."""
    return float(result.get("throughput", result)["events_per_s"])


def measure_rounds(run: Run, env: dict[str, str] | None) -> dict[str, Any]:
    """Every scenario for --rounds rounds: the best run of each, and the paired ratios.

    A pair is two figures of one round, measured seconds apart, so a host
    that is slower for a while slows both sides; the ratios are judged on the
    median of the pairs.
    """
    rounds = [one_round(run, number, env) for number in range(1, run.args.rounds + 1)]
    found: dict[str, Any] = {}
    for name in ("raw", *PASSTHROUGHS, "bus"):
        best = max((r[name] for r in rounds), key=rate)
        found[name] = dict(best, rounds=[rate(r[name]) for r in rounds])
    pairs = {"bus_over_raw": ("bus", "raw"), "bus_over_faust_passthrough":
             ("bus", "faust_passthrough"), "bus_over_faust_batched": ("bus", "faust_batched"),
             "faust_batched_over_raw": ("faust_batched", "raw")}
    found["paired"] = {key: [round(rate(r[a]) / rate(r[b]), 3) for r in rounds]
                       for key, (a, b) in pairs.items()}
    found["paired"]["engine_over_faust_passthrough"] = [
        round(r["engine"] / rate(r["faust_passthrough"]), 2) for r in rounds]
    if run.triggers:
        found["bus"]["latency"] = pooled_latency(
            [r["bus"]["latency"] for r in rounds if "latency" in r["bus"]],
            run.args.latency_rate)
    return found


def best_engine(run: Run) -> None:
    """The engine figure: the best of the dedicated passes and those between the rounds."""
    engine = run.results["engine"]["engine"]
    if max(run.engine_rounds) > engine["events_per_s"]:
        best = max(run.engine_rounds)
        engine.update(events_per_s=best, us_per_event=round(1e6 / best, 2),
                      seconds=round(run.n / best, 4))
    engine["passes_between_rounds"] = run.engine_rounds


def variant(run: Run, name: str, env: dict[str, str]) -> None:
    """Every scenario again with other Faust settings from the environment."""
    log(f"variant {name}: {env}")
    found: dict[str, Any] = {"env": env, **measure_rounds(run, env)}
    run.results.setdefault("variants", {})[name] = found
    latency = found["bus"].get("latency", {})
    log(f"  worker / raw (median of pairs) "
        f"{statistics.median(found['paired']['bus_over_raw'])}, latency "
        f"{latency.get('p50_ms')} / {latency.get('p99_ms')} ms")


def profiled(run: Run, name: str, env: dict[str, str] | None) -> dict[str, Any]:
    """The two passthroughs and the worker under cProfile."""
    log(f"5. profiles, {name} (cProfile slows them; figures above are unprofiled)")
    profiles: dict[str, Any] = {}
    for key, mode in PASSTHROUGHS.items():
        path = run.workdir / f"passthrough-{mode}-{name}.prof"
        result = run.passthrough(mode, path, env)
        profiles[key] = {"events_per_s_profiled": result["events_per_s"],
                         **summarise_profile(path, 30, run.n)}
    path = run.workdir / f"worker-{name}.prof"
    bus = run.worker(path, env)["throughput"]
    profiles["bus"] = {"events_per_s_profiled": bus["events_per_s"],
                       **summarise_profile(path, 40, bus["events"])}
    return profiles


def profile_phase(run: Run) -> None:
    run.results["profiles"] = {}
    for name, env in [("baseline", None), *run.variants.items()]:
        profiles = profiled(run, name, env)
        run.results["profiles"][name] = profiles
        print_profile(f"the bare Faust passthrough ({name})", profiles["faust_passthrough"])
        print_profile(f"the batched Faust passthrough ({name})", profiles["faust_batched"])
        print_profile(f"the advisering worker ({name})", profiles["bus"])
        print(f"\n--- advisering worker ({name}): cumulative, selected ---")
        print(profiles["bus"]["cumulative_selected"])


def kafka_phases(run: Run) -> None:
    """Preload, then scenarios 2-4 (and variants, profiles); the topics dropped after."""
    args, bootstrap = run.args, run.bootstrap
    topic_raw_out = run.topic_raw_out = f"bench-raw-out-{args.suffix}"
    records = [(p.key, p.value) for p in run.stream.events]
    try:
        log(f"preloading {run.n} events to {run.topic_in} and {CASE_EVENTS}")
        create_topics(bootstrap, [run.topic_in, topic_raw_out, args.warmup_topic])
        run.case_start = end_offsets(kafka_at(bootstrap), CASE_EVENTS)
        produce_all(bootstrap, run.topic_in, records)
        produce_all(bootstrap, CASE_EVENTS, records)
        run.results.update(measure_rounds(run, None))
        best_engine(run)
        for name, env in run.variants.items():
            variant(run, name, env)
        if args.profile:
            profile_phase(run)
    finally:
        delete_topics(bootstrap, [run.topic_in, topic_raw_out, args.warmup_topic])


def run(args: argparse.Namespace, variants: dict[str, dict[str, str]]) -> int:
    """The whole benchmark; writes the results file and prints the table."""
    args.triggers_published = 0
    matcher, vocabulary = load_engine(ROOT, args.bootstrap)
    key = secrets.token_hex(32)
    stream, triggers, n_citizens = build_inputs(args, matcher, vocabulary, key)
    results: dict[str, Any] = {
        **run_info("benchmarks/pipeline.py", faust=faust.__version__,
                   confluent_kafka=confluent_version),
        "config": {"events": args.events, "citizens": n_citizens,
                   "rules": len(matcher.compiled), "partitions": PARTITIONS,
                   "mix": dict(stream.counts.most_common()),
                   "latency_events": len(triggers), "latency_rate": args.latency_rate},
    }
    results["engine"] = engine_phase(stream, matcher, vocabulary, args)
    args.suffix = uuid.uuid4().hex[:8]
    args.warmup_topic = f"bench-warmup-{args.suffix}"
    workdir = Path(tempfile.mkdtemp(prefix="advisering-bench-"))
    kafka_phases(Run(args, variants, key, matcher, vocabulary, stream, triggers, results,
                     workdir, f"bench-in-{args.suffix}"))
    results["ratios"] = ratios(results)
    by_cpu = ratios_by_cpu(results)
    if by_cpu:
        results["ratios_by_cpu_per_event"] = by_cpu
    results["targets"] = dict(TARGETS)
    print_table(results)
    output = args.output or RESULTS
    write_results(output, results)
    log(f"results written to {output}; worker logs in {workdir}")
    if not args.profile:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0

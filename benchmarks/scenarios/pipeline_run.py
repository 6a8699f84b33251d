"""The pipeline benchmark's run: scenarios 1-4 on one broker, alternating in rounds.

Passthrough and bus alternate for --rounds rounds, each preceded by an engine
pass, so on a shared host they are measured over the same stretch of time;
each round gives paired ratios (see ``pair``).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
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
from advisering.testing import end_offsets
from scenarios.engine import build_inputs, engine_pass, engine_phase, load_engine
from scenarios.latency import pooled_latency
from scenarios.passthrough import bench_passthrough
from scenarios.pipeline_report import TARGETS, cpu_note, print_table, ratios, ratios_by_cpu
from scenarios.raw_loop import bench_raw
from scenarios.synthetic import Prepared, Stream
from scenarios.worker import bench_correlate_only, bench_worker
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

    def passthrough(self, profile_to: Path | None = None,
                    env: dict[str, str] | None = None) -> dict[str, Any]:
        return bench_passthrough(self.bootstrap, self.topic_in, self.n, self.workdir,
                                 self.args.timeout, profile_to, env)


def one_round(run: Run, number: int, env: dict[str, str] | None,
              ) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """(engine pass before it, passthrough, bus) of round ``number``."""
    engine_before = run.engine_sample()
    log(f"  engine pass: {engine_before} ev/s")
    log(f"3. bare Faust passthrough (worker subprocess), round {number}")
    passthrough = run.passthrough(env=env)
    log(f"  passthrough {passthrough['events_per_s']} ev/s "
        f"({cpu_note(passthrough['cpu'], 'process')})")
    log(f"  engine pass: {run.engine_sample()} ev/s")
    log(f"4. advisering worker end to end (worker subprocess), round {number}")
    bus = run.worker(env=env)
    latency = bus.get("latency", {})
    log(f"  bus {bus['throughput']['events_per_s']} ev/s "
        f"({cpu_note(bus['throughput']['cpu'], 'process')}); latency p50 "
        f"{latency.get('p50_ms')} ms, p99 {latency.get('p99_ms')} ms")
    return engine_before, passthrough, bus


def pair(run: Run, env: dict[str, str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Passthrough and bus, alternating for --rounds rounds; the best round of each.

    An engine pass runs right before each, so on a shared host the engine
    and the two Faust processes are measured over the same stretch of time.
    Each round also gives paired ratios: the engine pass and the bus run
    against the passthrough run next to them (seconds apart, so a host
    that is slower for a while slows both sides of a pair).
    """
    rounds = [one_round(run, number, env) for number in range(1, run.args.rounds + 1)]
    engine_before = [r[0] for r in rounds]
    passthroughs = [r[1] for r in rounds]
    buses = [r[2] for r in rounds]
    best_pass = max(passthroughs, key=lambda r: r["events_per_s"])
    best_bus = max(buses, key=lambda r: r["throughput"]["events_per_s"])
    passthrough = dict(best_pass, rounds=[r["events_per_s"] for r in passthroughs])
    bus = dict(best_bus, rounds=[r["throughput"]["events_per_s"] for r in buses])
    passthrough["paired_engine_over_passthrough"] = [
        round(e / p, 2) for e, p in zip(engine_before, passthrough["rounds"], strict=True)]
    bus["paired_bus_over_passthrough"] = [
        round(b / p, 3) for b, p in zip(bus["rounds"], passthrough["rounds"], strict=True)]
    if run.triggers:
        bus["latency"] = pooled_latency([r["latency"] for r in buses if "latency" in r],
                                        run.args.latency_rate)
    return passthrough, bus


def best_engine(run: Run) -> None:
    """The engine figure: the best of the dedicated passes and those between the rounds."""
    engine = run.results["engine"]["engine"]
    if max(run.engine_rounds) > engine["events_per_s"]:
        best = max(run.engine_rounds)
        engine.update(events_per_s=best, us_per_event=round(1e6 / best, 2),
                      seconds=round(run.n / best, 4))
    engine["passes_between_rounds"] = run.engine_rounds


def correlate_only(run: Run) -> None:
    log("4b. the worker's correlate hop alone (repartition topic preloaded, intake idle)")
    result = bench_correlate_only(run.bootstrap, run.stream, run.key, run.workdir, run.args)
    run.results["bus_correlate_only"] = result
    log(f"  correlate hop alone {result['throughput']['events_per_s']} ev/s "
        f"({cpu_note(result['throughput']['cpu'], 'process')})")


def variant(run: Run, name: str, env: dict[str, str]) -> None:
    """Passthrough and bus again with other Faust settings from the environment."""
    log(f"variant {name}: {env}")
    found: dict[str, Any] = {"env": env}
    found["faust_passthrough"], found["bus"] = pair(run, env)
    bus = found["bus"]["throughput"]["events_per_s"]
    found["bus_over_faust_passthrough"] = round(bus / found["faust_passthrough"]["events_per_s"],
                                                3)
    found["bus_over_baseline_passthrough"] = round(
        bus / run.results["faust_passthrough"]["events_per_s"], 3)
    run.results.setdefault("variants", {})[name] = found
    log(f"  passthrough {found['faust_passthrough']['events_per_s']} ev/s, bus "
        f"{bus} ev/s, latency "
        f"{found['bus'].get('latency', {}).get('p50_ms')} / "
        f"{found['bus'].get('latency', {}).get('p99_ms')} ms")


def profiled(run: Run, name: str, env: dict[str, str] | None) -> dict[str, Any]:
    """The passthrough and the worker (and, for the baseline, the correlate hop) profiled."""
    log(f"5. profiles, {name} (cProfile slows both; figures above are unprofiled)")
    profile_pass = run.workdir / f"passthrough-{name}.prof"
    passthrough = run.passthrough(profile_pass, env)
    profile_bus = run.workdir / f"worker-{name}.prof"
    bus = run.worker(profile_bus, env)["throughput"]
    profiles = {
        "faust_passthrough": {"events_per_s_profiled": passthrough["events_per_s"],
                              **summarise_profile(profile_pass, 30, run.n)},
        "bus": {"events_per_s_profiled": bus["events_per_s"],
                **summarise_profile(profile_bus, 40, bus["events"])},
    }
    if env is None:
        profile_correlate = run.workdir / "worker-correlate-only.prof"
        correlate = bench_correlate_only(run.bootstrap, run.stream, run.key, run.workdir,
                                         run.args, profile_correlate)["throughput"]
        profiles["bus_correlate_only"] = {
            "events_per_s_profiled": correlate["events_per_s"],
            **summarise_profile(profile_correlate, 30, correlate["events"])}
    return profiles


def profile_phase(run: Run) -> None:
    run.results["profiles"] = {}
    for name, env in [("baseline", None), *run.variants.items()]:
        profiles = profiled(run, name, env)
        run.results["profiles"][name] = profiles
        print_profile(f"the Faust passthrough ({name})", profiles["faust_passthrough"])
        print_profile(f"the advisering worker ({name})", profiles["bus"])
        if "bus_correlate_only" in profiles:
            print_profile("the worker's correlate hop alone", profiles["bus_correlate_only"])
        print(f"\n--- advisering worker ({name}): cumulative, selected ---")
        print(profiles["bus"]["cumulative_selected"])


def kafka_phases(run: Run) -> None:
    """Preload, then scenarios 2-4 (and variants, profiles); the topics dropped after."""
    args, bootstrap = run.args, run.bootstrap
    topic_raw_out = f"bench-raw-out-{args.suffix}"
    records = [(p.key, p.value) for p in run.stream.events]
    try:
        log(f"preloading {run.n} events to {run.topic_in} and {CASE_EVENTS}")
        create_topics(bootstrap, [run.topic_in, topic_raw_out, args.warmup_topic])
        run.case_start = end_offsets(bootstrap, CASE_EVENTS)
        produce_all(bootstrap, run.topic_in, records)
        produce_all(bootstrap, CASE_EVENTS, records)
        log("2. raw confluent-kafka consume -> produce loop")
        run.results["raw"] = bench_raw(bootstrap, run.topic_in, topic_raw_out, run.n,
                                       args.timeout)
        log(f"  raw {run.results['raw']['events_per_s']} ev/s")
        run.results["faust_passthrough"], run.results["bus"] = pair(run, None)
        best_engine(run)
        correlate_only(run)
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

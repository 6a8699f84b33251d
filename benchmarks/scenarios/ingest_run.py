"""The ingest benchmark's run: edge steps, HTTP ingest single and batched, direct producing,
two serve processes against one."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from confluent_kafka import __version__ as confluent_version
from harness import ROOT, log
from harness.children import free_port
from harness.cpu import wait_quiet
from harness.results import code_state, run_info, write_results

from advisering.dev.simulator import source_grants
from advisering.events import Vocabulary
from advisering.http.sources import add_source
from advisering.kafka.topics import default_vocabulary
from scenarios.direct_produce import PRODUCER_DEFAULTS, bench_direct_rounds
from scenarios.edge_steps import INGEST_PER_EVENT, edge_breakdown
from scenarios.ingest_http import bench_ingest
from scenarios.ingest_profile import print_profile, summarise_profile
from scenarios.ingest_report import print_edge_steps, print_table, ratios
from scenarios.ingest_scale import scale_phase
from scenarios.ingest_server import Server, server_env, serving
from scenarios.simulated import (
    EVENTS_PER_CITIZEN,
    SIM_DAYS,
    Request,
    batched_requests,
    prepared_records,
    simulated_events,
    single_requests,
    warmup_events,
)

RESULTS = ROOT / "benchmarks" / "results" / "ingest-latest.json"


@dataclass
class Inputs:
    """The events of the run: as dicts, as requests, as prepared records."""

    events: list[dict[str, Any]]
    simulated: int
    citizens: int
    sources: list[str]
    records: list[tuple[bytes, bytes]]
    single: list[Request]
    batched: list[Request]
    warm_single: list[Request]
    warm_batched: list[Request]


@dataclass
class IngestRun:
    """What the server phases share: the settings, the sources' keys, the inputs."""

    args: argparse.Namespace
    pseudonym_key: str
    inputs: Inputs
    workdir: Path
    headers: dict[str, dict[str, str]]

    def server(self, log_name: str, profile_to: Path | None = None,
               switch_interval: float | None = None, processes: int = 1) -> Server:
        port = free_port()
        env = server_env(self.args.bootstrap, self.pseudonym_key,
                         self.workdir / "sources.yaml", port, self.args.max_events)
        return Server(env, port, self.workdir / log_name, profile_to, switch_interval,
                      processes=processes)

    def ingest(self, name: str, server: Server, batched: bool) -> dict[str, Any]:
        inputs = self.inputs
        requests = inputs.batched if batched else inputs.single
        warmup = inputs.warm_batched if batched else inputs.warm_single
        return bench_ingest(name, server, requests, warmup, self.headers, self.args.bootstrap,
                            self.args)


def prepare(args: argparse.Namespace, pseudonym_key: str, vocabulary: Vocabulary) -> Inputs:
    n = args.events
    citizens = args.citizens or int(n / EVENTS_PER_CITIZEN * 1.1) + 50
    log(f"simulating {citizens} citizens over {SIM_DAYS} days (seed {args.seed})")
    began = time.perf_counter()
    events, simulated = simulated_events(n, citizens, args.seed)
    sources = sorted({e["source"] for e in events})
    log(f"  {len(events)} events ({simulated} simulated, {len(events) - simulated} cycled "
        f"with fresh ids) from {len(sources)} sources in {time.perf_counter() - began:.1f}s")
    records = prepared_records(events, pseudonym_key.encode(), vocabulary)
    value_bytes = statistics.fmean(len(v) for _, v in records)
    body_bytes = statistics.fmean(len(orjson.dumps(e)) for e in events)
    log(f"  prepared for the direct producer: {value_bytes:.0f} bytes per record value; "
        f"{body_bytes:.0f} bytes per event in a request body")
    warm = warmup_events(events, args.warmup)
    return Inputs(events, simulated, citizens, sources, records, single_requests(events),
                  batched_requests(events, args.batch), single_requests(warm),
                  batched_requests(warm, args.batch))


def header(args: argparse.Namespace, inputs: Inputs, state: dict[str, Any],
           others_at_start: float | None, edge: dict[str, Any]) -> dict[str, Any]:
    mix = Counter(e["type"] for e in inputs.events)
    return {
        **run_info("benchmarks/ingest.py", aiohttp=aiohttp.__version__,
                   confluent_kafka=confluent_version, load_avg_at_start=os.getloadavg(),
                   others_cores_at_start=others_at_start),
        "code": state,
        "config": {"events": args.events, "simulated_events": inputs.simulated,
                   "citizens": inputs.citizens, "seed": args.seed, "days": SIM_DAYS,
                   "concurrency": args.concurrency, "batch": args.batch,
                   "warmup": args.warmup, "ingest_max_events": args.max_events,
                   "producer": PRODUCER_DEFAULTS, "sources": len(inputs.sources),
                   "mix": dict(mix.most_common())},
        "edge_us_per_event": edge,
        "phases": {},
    }


def ingest_phases(run: IngestRun, phases: dict[str, Any]) -> None:
    args = run.args
    server = run.server("serve.log")
    log(f"starting `advisering serve` on port {server.port}")
    with serving(server, args.ready_timeout):
        log(f"1. ingest, one event per request, {args.concurrency} clients")
        phases["ingest_single"] = run.ingest("ingest single", server, batched=False)
        log(f"  {phases['ingest_single']['events_per_s']:,} events/s, "
            f"{phases['ingest_single']['request_latency']}")
        log(f"2. ingest, {args.batch} events per request, {args.concurrency} clients")
        phases["ingest_batched"] = run.ingest("ingest batched", server, batched=True)
        log(f"  {phases['ingest_batched']['events_per_s']:,} events/s, "
            f"{phases['ingest_batched']['request_latency']}")


def direct_phases(run: IngestRun, phases: dict[str, Any]) -> None:
    args, records = run.args, run.inputs.records
    log("3. confluent-kafka directly (prepared events), as fast as it goes")
    phases["direct"] = bench_direct_rounds(args.bootstrap, records, None, args.direct_rounds,
                                           args.timeout)
    log(f"  {phases['direct']['events_per_s']:,} events/s, "
        f"{phases['direct']['delivery_latency']}")
    log(f"3b. confluent-kafka directly, at most {args.concurrency} records in flight")
    phases["direct_windowed"] = bench_direct_rounds(args.bootstrap, records, args.concurrency,
                                                    1, args.timeout)
    log(f"  {phases['direct_windowed']['events_per_s']:,} events/s, "
        f"{phases['direct_windowed']['delivery_latency']}")


def switch_interval_variant(run: IngestRun, interval: float) -> tuple[str, dict[str, Any]]:
    """Both ingest phases against a server with another GIL switch interval."""
    name = f"switch_interval_{interval:g}"
    log(f"variant {name}: both ingest phases, server with sys.setswitchinterval"
        f"({interval:g})")
    varied = run.server(f"serve-{name}.log", switch_interval=interval)
    variant: dict[str, Any] = {"switch_interval": interval}
    with serving(varied, run.args.ready_timeout):
        variant["ingest_single"] = run.ingest(f"{name} single", varied, batched=False)
        variant["ingest_batched"] = run.ingest(f"{name} batched", varied, batched=True)
    for phase in ("ingest_single", "ingest_batched"):
        log(f"  {phase}: {variant[phase]['events_per_s']:,} events/s, "
            f"{variant[phase]['request_latency']}")
    return name, variant


def profile_phase(run: IngestRun) -> dict[str, Any]:
    log("4. the same ingest phases against a cProfiled server (figures inflated)")
    profiles: dict[str, Any] = {}
    for name, batched in (("ingest_single", False), ("ingest_batched", True)):
        # A server per phase: cProfile keeps adding up after a disable/enable.
        profile_to = run.workdir / f"serve-{name}.prof"
        profiled = run.server(f"serve-{name}-profiled.log", profile_to)
        with serving(profiled, run.args.ready_timeout):
            measured = run.ingest(f"{name} (profiled)", profiled, batched)
        profiles[name] = {"events_per_s_profiled": measured["events_per_s"],
                          **summarise_profile(profile_to, len(run.inputs.events), 30)}
        print_profile(name, profiles[name])
        print(profiles[name]["top_tottime"])
    return profiles


def server_phases(run: IngestRun, results: dict[str, Any]) -> None:
    """Every phase that needs the sources file; the work directory removed after."""
    try:
        grants = source_grants()
        keys = {source: add_source(run.workdir / "sources.yaml", source, grants[source],
                                   description="benchmarks/ingest.py")
                for source in run.inputs.sources}
        run.headers.update({source: {"Authorization": f"Bearer {key}",
                                     "Content-Type": "application/json"}
                            for source, key in keys.items()})
        ingest_phases(run, results["phases"])
        direct_phases(run, results["phases"])
        if run.args.scale_rounds:
            results["scale_out"] = scale_phase(run)
        for interval in run.args.switch_interval:
            name, variant = switch_interval_variant(run, interval)
            results.setdefault("variants", {})[name] = variant
        if run.args.profile:
            results["profiles"] = profile_phase(run)
    finally:
        shutil.rmtree(run.workdir, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    """The whole benchmark; writes the results file and prints the table."""
    state = code_state()
    log(f"code: commit {state['commit']}, changed under advisering/: "
        f"{state['changed_files'] or 'none'}")
    pseudonym_key = secrets.token_hex(32)  # 64 hex characters
    vocabulary = default_vocabulary(ROOT / "topics")
    inputs = prepare(args, pseudonym_key, vocabulary)
    others_at_start = (wait_quiet(args.bootstrap, args.wait_quiet) if args.wait_quiet > 0
                       else None)
    log("edge steps on one core (no HTTP, no Kafka)")
    edge = edge_breakdown(inputs.events[:5000], pseudonym_key.encode(), vocabulary,
                          args.repeats)
    log(f"  {INGEST_PER_EVENT}: {edge['us_per_event'][INGEST_PER_EVENT]} us/event")
    if args.edge_only:
        print_edge_steps(edge)
        return 0
    results = header(args, inputs, state, others_at_start, edge)
    workdir = Path(tempfile.mkdtemp(prefix="advisering-bench-ingest-"))
    server_phases(IngestRun(args, pseudonym_key, inputs, workdir, {}), results)
    results["ratios"] = ratios(results["phases"])
    print_table(results)
    write_results(args.output, results)
    log(f"results written to {args.output}")
    return 0

"""The soak benchmark's run: start the rig, post for N minutes, sample, drain, report, stop."""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from harness import ROOT, log
from harness.procfs import cpu_seconds, open_fds, rss_bytes
from harness.results import code_state, run_info, write_results

from advisering.dev.simulator import CET, Municipality, simulate
from advisering.kafka.topics import CASE_EVENTS, NOTIFICATIONS, citizen_topic_name
from advisering.testing import group_lag, kafka_at
from scenarios.ingest_server import stop_on_signals
from scenarios.scaleout_group import SETTLE_CONFIRMATIONS, SETTLE_POLL, settled
from scenarios.soak_inbox import InboxWatch
from scenarios.soak_post import Poster
from scenarios.soak_report import (
    FLOW_HEADER,
    ProcessReading,
    Sample,
    flow_rows,
    markdown_report,
    process_names,
    process_rows,
    quantile_ms,
    summary,
    text_table,
    write_plot,
)
from scenarios.soak_rig import Rig

#: Simulated events per citizen in 30 days (measured: 0.695 for seed 1, 50,000 citizens).
EVENTS_PER_CITIZEN_30D = 0.69
#: Seconds between two looks for exited processes.
WATCH_EVERY = 1.0


@dataclass
class Watch:
    """The run's live state between samples: what exited, when, and the previous readings."""

    rig: Rig
    poster: Poster
    inbox: InboxWatch
    began: float = field(default_factory=time.monotonic)
    incidents: list[str] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    last_acked: int = 0
    last_t: float = 0.0

    def pids(self) -> dict[str, int | None]:
        serve = {"serve": self.rig.serve.pid} if self.rig.serve is not None else {}
        workers = {w.name: w.pid for w in self.rig.workers}
        return {**serve, **workers, **self.rig.broker_pids()}

    def check_exits(self) -> bool:
        """Report every process that exited since the last look; False once serve is gone."""
        now = time.monotonic() - self.began
        exits = {w.name: w.process.poll() for w in self.rig.workers if w.process is not None}
        if self.rig.serve is not None and self.rig.serve.process is not None:
            exits["serve"] = self.rig.serve.process.poll()
        for name, pid in self.rig.broker_pids().items():
            exits[name] = "gone" if pid is None else None
        for name, code in exits.items():
            if code is not None and name not in self.gone:
                self.gone.add(name)
                self.incidents.append(f"{now:.0f}s: {name} EXITED ({code}); not restarted")
                log(f"!! {self.incidents[-1]}")
        return "serve" not in self.gone

    def lags(self) -> tuple[int | None, int | None]:
        topics = [CASE_EVENTS, citizen_topic_name(self.rig.app_id)]
        try:
            lag: int | None = group_lag(kafka_at(self.rig.bootstrap), self.rig.app_id, topics)
        except Exception as exc:  # noqa: BLE001 - a sample without a lag, said so
            log(f"  (worker lag unreadable: {exc})")
            lag = None
        try:
            inbox: int | None = group_lag(kafka_at(self.rig.bootstrap),
                                          f"{self.rig.app_id}-inbox", [NOTIFICATIONS])
        except Exception as exc:  # noqa: BLE001
            log(f"  (inbox lag unreadable: {exc})")
            inbox = None
        return lag, inbox

    def sample(self, phase: str) -> Sample:
        lag, inbox_lag = self.lags()  # first: reading the groups takes a second or two
        t = time.monotonic() - self.began
        tally = self.poster.tally
        latencies = self.inbox.take_window()
        processes = {name: ProcessReading(pid, rss_bytes(pid), open_fds(pid), cpu_seconds(pid))
                     for name, pid in self.pids().items()}
        acked = tally.acked
        rate = (acked - self.last_acked) / max(t - self.last_t, 1e-6)
        self.last_acked, self.last_t = acked, t
        return Sample(t, phase, tally.taken, acked, rate, tally.failed, tally.retries, lag,
                      inbox_lag, len(latencies), tuple(latencies), processes)


def wait_group(rig: Rig, timeout: float) -> float:
    """Seconds until both workers are in the group, own partitions and are ready.

    A fresh cluster may answer NOT_COORDINATOR while the offsets topic's
    leaders settle: such answers count as "not yet", up to ``timeout``.
    """
    admin = AdminClient({"bootstrap.servers": rig.bootstrap})
    began = time.monotonic()
    agreed = 0
    while agreed < SETTLE_CONFIRMATIONS:
        if time.monotonic() - began > timeout:
            tails = "\n".join(worker.log_tail() for worker in rig.workers)
            raise TimeoutError(f"the two workers did not settle within {timeout:.0f}s\n{tails}")
        time.sleep(SETTLE_POLL)
        try:
            ok, _ = settled(admin, rig.app_id, list(rig.workers))
        except KafkaException:
            ok = False
        agreed = agreed + 1 if ok else 0
    return time.monotonic() - began


def sized_events(args: argparse.Namespace, workdir: Path) -> Iterator[dict[str, Any]]:
    """A simulated municipality big enough for rate x duration (10% to spare), bucketed now."""
    needed = args.rate * args.minutes * 60 * 1.1
    citizens = args.citizens or math.ceil(needed / (EVENTS_PER_CITIZEN_30D * args.days / 30))
    log(f"simulating {citizens} citizens over {args.days} days (seed {args.seed}) ...")
    municipality = Municipality(seed=args.seed, citizens=citizens, days=args.days,
                                start=dt_start())
    events = simulate(municipality, workdir)
    first = next(events)  # the simulator buckets every citizen's events before the first
    args.citizens = citizens
    return itertools.chain([first], events)


def dt_start() -> Any:
    import datetime as dt  # noqa: PLC0415

    return dt.datetime(2026, 11, 1, tzinfo=CET)


def print_sample(sample: Sample, names: list[str]) -> None:
    flow = flow_rows([sample])[0]
    mem = process_rows([sample], names)[0][1:]
    log("  " + "  ".join(f"{h}={v}" for h, v in zip(FLOW_HEADER, flow, strict=True)))
    log("    RSS MB/fds: " + "  ".join(f"{n}={m}" for n, m in zip(names, mem, strict=True)))


def load_phase(watch: Watch, args: argparse.Namespace, samples: list[Sample]) -> bool:
    """Post for the whole duration, sampling every interval; False when serve died."""
    next_sample = watch.began + args.interval
    end = watch.began + args.minutes * 60
    while time.monotonic() < end and watch.poster.running:
        time.sleep(WATCH_EVERY)
        if not watch.check_exits():
            return False
        if time.monotonic() >= next_sample:
            samples.append(watch.sample("load"))
            print_sample(samples[-1], process_names(samples))
            next_sample += args.interval
    return True


def drain_phase(watch: Watch, args: argparse.Namespace, samples: list[Sample]) -> str | None:
    """After posting: wait until both groups committed everything; None, or why not."""
    watch.poster.stop()
    if not watch.poster.join(timeout=120):
        watch.incidents.append("requests still unanswered 120 s after posting ended")
    deadline = time.monotonic() + args.drain_timeout
    quiet = 0
    next_sample = time.monotonic() + args.interval
    while time.monotonic() < deadline:
        time.sleep(2.0)
        watch.check_exits()
        lag, inbox_lag = watch.lags()
        quiet = quiet + 1 if lag == 0 and inbox_lag == 0 else 0
        if quiet >= 2:
            time.sleep(0.5)  # the inbox watch's last poll
            samples.append(watch.sample("drain"))
            return None
        if time.monotonic() >= next_sample:
            samples.append(watch.sample("drain"))
            print_sample(samples[-1], process_names(samples))
            next_sample += args.interval
    samples.append(watch.sample("drain"))
    return f"not drained within {args.drain_timeout:.0f}s (lag {samples[-1].lag}, " \
           f"inbox lag {samples[-1].inbox_lag})"


def run(args: argparse.Namespace) -> int:
    """The whole benchmark; the exit code is 1 when anything went wrong (all of it reported)."""
    stop_on_signals()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="advisering-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"soak: {args.minutes} min at {args.rate:g} events/s, samples every {args.interval:g}s;"
        f" logs and data in {workdir}")
    rig = Rig(workdir, args.kafka_port, args.serve_port)
    samples: list[Sample] = []
    watch: Watch | None = None
    events: Iterator[dict[str, Any]] | None = None
    outcome = "interrupted"
    try:
        rig.start_cluster()
        rig.apply_topics()
        rig.register_sources()
        rig.start_serve(args.ready_timeout)
        rig.start_workers(2, dict(pair.split("=", 1) for pair in args.worker_env))
        took = wait_group(rig, args.ready_timeout)
        log(f"  two workers settled in group {rig.app_id} after {took:.1f}s")
        events = sized_events(args, workdir)
        poster = Poster(f"http://127.0.0.1:{args.serve_port}", rig.keys, events, args.rate,
                        args.minutes * 60, window=args.window)
        inbox = InboxWatch(rig.inbox_db, poster.acks)
        watch = Watch(rig, poster, inbox)
        samples.append(replace(watch.sample("load"), t=0.0))  # the processes before any load
        watch.began, watch.last_t = time.monotonic(), 0.0
        inbox.start()
        poster.start()
        outcome = "serve exited" if not load_phase(watch, args, samples) else (
            drain_phase(watch, args, samples) or "ok")
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
    finally:
        if watch is not None:
            watch.poster.stop()
            watch.inbox.stop()
            watch.inbox.flush_pending()
        if events is not None and hasattr(events, "close"):
            events.close()
        log("stopping workers, serve and the cluster ...")
        rig.close(keep_data=args.keep_data)
    return report(args, workdir, rig, watch, samples, outcome)


def report(args: argparse.Namespace, workdir: Path, rig: Rig, watch: Watch | None,
           samples: list[Sample], outcome: str) -> int:
    """Print the tables; write the JSON, Markdown, CSV and PNG; the exit code."""
    if watch is None or not samples:
        log(f"no samples ({outcome}); logs in {workdir}")
        return 1
    tally, inbox = watch.poster.tally, watch.inbox
    problems = list(watch.incidents)
    if outcome != "ok":
        problems.append(f"outcome: {outcome}")
    if tally.failed or tally.ran_out or inbox.unmatched:
        problems.append(f"failed events {tally.failed}, simulator ran out {tally.ran_out}, "
                        f"unmatched notifications {inbox.unmatched}; errors {tally.errors[:5]}")
    overall = inbox.all_latencies()
    figures = summary(samples, overall)
    worker_part, delivery_part = inbox.parts()
    figures["latency"]["to_created"] = {"p50_ms": quantile_ms(worker_part, 0.5),
                                        "p99_ms": quantile_ms(worker_part, 0.99)}
    figures["latency"]["created_to_visible"] = {"p50_ms": quantile_ms(delivery_part, 0.5),
                                                "p99_ms": quantile_ms(delivery_part, 0.99)}
    facts = facts_of(args, rig, watch, figures, problems)
    names = process_names(samples)
    print()
    print(text_table(FLOW_HEADER, flow_rows(samples)))
    print()
    print("RSS MB / open fds")
    print(text_table(["t (s)", *names], process_rows(samples, names)))
    print()
    for fact in facts:
        print(f"- {fact}")
    out = args.output or ROOT / "benchmarks" / "results" / "soak-latest"
    title = f"Soak: {args.minutes:g} min at {args.rate:g} events/s, 2 workers, 3 brokers"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown_report(title, facts, samples))
    from scenarios.soak_report import csv_text  # noqa: PLC0415

    out.with_suffix(".csv").write_text(csv_text(samples, names))
    write_results(out.with_suffix(".json"), {
        **run_info("benchmarks/soak.py"), "code": code_state(), "outcome": outcome,
        "problems": problems, "summary": figures,
        "poster": {**asdict(tally), "statuses": {str(k): v for k, v in tally.statuses.items()}},
        "inbox": {"seen": inbox.seen, "unmatched": inbox.unmatched,
                  "seen_before_ack": inbox.seen_before_ack, "errors": inbox.errors},
        "samples": [{**asdict(s), "latencies_s": None, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms}
                    for s in samples]})
    write_plot(out.with_suffix(".png"), samples, title)
    log(f"written: {out}.md .csv .json .png; logs in {workdir}")
    return 1 if problems else 0


def facts_of(args: argparse.Namespace, rig: Rig, watch: Watch, figures: dict[str, Any],
             problems: list[str]) -> list[str]:
    """The lines above the tables: what ran, the totals, the figures to quote, the problems."""
    tally, inbox, latency = watch.poster.tally, watch.inbox, figures["latency"]
    grow = ", ".join(f"{name} {p['rss_first_mb']}->{p['rss_last_mb']} MB (max {p['rss_max_mb']}"
                     f", fds {p['fds_first']}->{p['fds_last']})"
                     for name, p in figures["processes"].items())
    return [
        f"command: `{run_info('benchmarks/soak.py')['command']}`; commit "
        f"{code_state()['commit']}",
        f"cluster {rig.bootstrap} (3 nodes, topics as declared: replication 3, min ISR 2); "
        f"worker group {rig.app_id}; serve on port {rig.serve_port}",
        f"simulated municipality: {args.citizens} citizens, {args.days} days, seed {args.seed};"
        f" posted in windows of {args.window:g}s, one request per source system",
        f"events taken {tally.taken}, acknowledged {tally.acked}, failed {tally.failed}, "
        f"requests {tally.requests} (statuses {dict(tally.statuses)}), retries {tally.retries}",
        f"notifications seen in the inbox {inbox.seen} (matched {latency['count']}, seen "
        f"before the 202 was handled {inbox.seen_before_ack}, unmatched {inbox.unmatched})",
        f"publish->inbox latency over the run: p50 {latency['p50_ms']} ms, p99 "
        f"{latency['p99_ms']} ms, max {latency['max_ms']} ms (202 at the client to the row "
        f"visible in serve's inbox database, polled every 50 ms); of which 202 -> created by "
        f"the worker p50 {latency['to_created']['p50_ms']} / p99 "
        f"{latency['to_created']['p99_ms']} ms, created -> visible p50 "
        f"{latency['created_to_visible']['p50_ms']} / p99 "
        f"{latency['created_to_visible']['p99_ms']} ms",
        f"worker group lag max {figures['lag_max']}, last {figures['lag_last']}; "
        f"inbox consumer lag max {figures['inbox_lag_max']}",
        f"RSS first->last: {grow}",
        "problems: " + ("; ".join(problems) if problems else "none"),
    ]

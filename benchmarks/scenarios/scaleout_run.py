"""The scale-out benchmark's rounds, checks, table and results file (see benchmarks/scaleout.py)."""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import faust
from confluent_kafka import __version__ as confluent_version
from harness import ROOT, log
from harness.cpu import wait_quiet
from harness.kafka import PARTITIONS
from harness.procfs import broker_pid, wait_for_quiet
from harness.results import code_state, run_info, write_results

from scenarios.engine import load_engine
from scenarios.scaleout_group import Backlog, drain_with
from scenarios.synthetic import build_stream

RESULTS = ROOT / "benchmarks" / "results" / "scaleout-latest.json"
SETUPS = {"one": 1, "two": 2}  # results key: worker processes in the group


def build_backlog(args: argparse.Namespace) -> tuple[Backlog, dict[str, Any]]:
    """The synthetic events of benchmarks/pipeline.py, built once; and the run's config."""
    matcher, vocabulary = load_engine(ROOT, args.bootstrap)
    key = secrets.token_hex(32)
    n_citizens = max(10, min(args.citizens, args.events // 4))
    log(f"building {args.events} synthetic events for {n_citizens} citizens")
    stream = build_stream(args.events, n_citizens, key.encode(), vocabulary, args.seed)
    everyone = {citizen for p in stream.events for citizen in p.citizens}
    second = {citizen for p in stream.events for citizen in p.citizens[1:]}
    backlog = Backlog(records=[(p.key, p.value) for p in stream.events],
                      copies=sum(len(p.citizens) for p in stream.events),
                      citizens=frozenset(everyone), fixed_order=frozenset(everyone - second),
                      key=key)
    config = {"events": args.events, "citizen_copies": backlog.copies, "citizens": n_citizens,
              "fixed_order_citizens": len(backlog.fixed_order),
              "rules": len(matcher.compiled), "partitions": PARTITIONS, "rounds": args.rounds,
              "mix": dict(stream.counts.most_common())}
    return backlog, config


def cpu_cores(cpu: dict[str, Any], members: int) -> dict[str, float]:
    """The cores each worker, the broker and the rest of the host used during the drain."""
    names = ["process"] if members == 1 else [f"worker_{n}" for n in range(1, members + 1)]
    found = {f"worker_{n}": float(cpu.get(f"{name}_cpu_util", 0.0))
             for n, name in enumerate(names, 1)}
    found["workers_us_per_event"] = round(
        sum(float(cpu.get(f"{name}_cpu_us_per_event", 0.0)) for name in names), 1)
    found["broker"] = float(cpu.get("broker_cpu_util", 0.0))
    found["others"] = float(cpu.get("others_cores", 0.0))
    return found


def one_drain(args: argparse.Namespace, backlog: Backlog, workdir: Path, setup: str,
              number: int) -> dict[str, Any]:
    """One setup of one round, once the broker and the rest of the host have quietened.

    Two workers need both cores: a drain next to another benchmark measures
    the other benchmark. The wait is bounded (--wait-quiet); what the rest of
    the host used is recorded with every drain either way.
    """
    wait_for_quiet(broker_pid(args.bootstrap))
    others = wait_quiet(args.bootstrap, args.wait_quiet) if args.wait_quiet > 0 else None
    members = SETUPS[setup]
    found = drain_with(args.bootstrap, backlog, members, workdir, args.timeout,
                       args.settle_timeout)
    found["others_cores_before"] = others
    found["cores"] = cpu_cores(found["cpu"], members)
    cores = found["cores"]
    log(f"round {number}, {members} process(es): {found['events_per_s']:,} copies/s; "
        f"settled {found['settle_s']} s (rebalance {found['rebalance_s']} s); workers "
        f"{' + '.join(str(cores[f'worker_{n}']) for n in range(1, members + 1))} cores, "
        f"broker {cores['broker']}, others {cores['others']}; "
        f"{found['notifications_fixed_order']} notifications of fixed-order citizens, "
        f"{found['notifications']} in all")
    return found


def measure_rounds(args: argparse.Namespace, backlog: Backlog,
                   workdir: Path) -> list[dict[str, Any]]:
    """--rounds rounds of both setups; odd rounds start with one process, even with two.

    Alternating the order within the pairs cancels a drift of the shared
    host's speed that would otherwise favour whichever setup runs first.
    """
    rounds: list[dict[str, Any]] = []
    for number in range(1, args.rounds + 1):
        order = ["one", "two"] if number % 2 else ["two", "one"]
        found: dict[str, Any] = {"round": number, "order": order}
        for setup in order:
            found[setup] = one_drain(args, backlog, workdir, setup, number)
        found["two_over_one"] = round(
            found["two"]["events_per_s"] / found["one"]["events_per_s"], 3)
        rounds.append(found)
    return rounds


def notification_check(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Distinct notification ids per drain; those of the fixed-order citizens must all agree.

    See ``Backlog.fixed_order``: for the other citizens the count may differ
    between any two drains, so it is shown (by setup), not held equal.
    """
    drains = [(r[setup], setup) for r in rounds for setup in r["order"]]
    fixed = [drain["notifications_fixed_order"] for drain, _ in drains]
    return {
        "fixed_order_per_drain": fixed,
        "same": len(set(fixed)) == 1,
        "all_citizens": {setup: [d["notifications"] for d, s in drains if s == setup]
                         for setup in SETUPS},
        "short_runs": [f"round {r['round']} {setup}" for r in rounds for setup in r["order"]
                       if r[setup]["short"]],
        "uncommitted_runs": [f"round {r['round']} {setup}: {r[setup]['uncommitted']}"
                             for r in rounds for setup in r["order"] if r[setup]["uncommitted"]],
        "duplicate_records": sum(d["notification_records"] - d["notifications"]
                                 for d, _ in drains),
    }


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds; the figure is the median of the per-round ratios."""
    ratios = [r["two_over_one"] for r in rounds]
    return {
        "two_over_one_median": round(statistics.median(ratios), 3),
        "two_over_one_rounds": ratios,
        "one_events_per_s": [r["one"]["events_per_s"] for r in rounds],
        "two_events_per_s": [r["two"]["events_per_s"] for r in rounds],
        "one_median_events_per_s": round(statistics.median(
            r["one"]["events_per_s"] for r in rounds)),
        "two_median_events_per_s": round(statistics.median(
            r["two"]["events_per_s"] for r in rounds)),
        "rebalance_s_two": [r["two"]["rebalance_s"] for r in rounds],
    }


def print_table(rounds: list[dict[str, Any]], found: dict[str, Any],
                notifications: dict[str, Any]) -> None:
    """Per round: both rates, the ratio, the second member's rebalance and where the CPU went."""
    print(f"\n{'round':>5}  {'1 process':>11}  {'2 processes':>11}  {'2/1':>6}  "
          f"{'rebalance':>9}  cores 1: worker/broker/others   "
          f"cores 2: workers/broker/others   µs CPU/copy 1 | 2")
    for r in rounds:
        one, two = r["one"]["cores"], r["two"]["cores"]
        print(f"{r['round']:>5}  {r['one']['events_per_s']:>11,}  {r['two']['events_per_s']:>11,}"
              f"  {r['two_over_one']:>5}x  {r['two']['rebalance_s']:>7} s  "
              f"{one['worker_1']:>4} / {one['broker']:>4} / {one['others']:>4}"
              f"{'':13}{two['worker_1']:>4}+{two['worker_2']:<4} / {two['broker']:>4} / "
              f"{two['others']:>4}{'':10}{one['workers_us_per_event']:>6} | "
              f"{two['workers_us_per_event']}")
    print(f"\nrates in citizen copies/s ({rounds[0]['one']['events']} copies of "
          f"{rounds[0]['one']['input_events']} events), as benchmarks/pipeline.py's worker")
    print(f"two processes / one, median of the rounds' pairs: "
          f"{found['two_over_one_median']}x {found['two_over_one_rounds']} "
          f"(medians {found['one_median_events_per_s']:,} and "
          f"{found['two_median_events_per_s']:,} copies/s)")
    for r in rounds:
        members = r["two"]["per_member"]

        def each(name: str, members: list[dict[str, float]] = members) -> str:
            return " + ".join(f"{m[name]:.0f}" for m in members)

        print(f"round {r['round']}, 2 processes: processed {each('correlated')}; in one hop "
              f"{each('direct')}, through the repartition topic {each('repartitioned')} "
              f"(1 process: {r['one']['direct']:.0f} and {r['one']['repartitioned']:.0f})")
    print(f"notifications of the fixed-order citizens, per drain: "
          f"{notifications['fixed_order_per_drain']}"
          + ("" if notifications["same"] else "  <-- MISMATCH (an error)"))
    every = notifications["all_citizens"]
    print(f"notifications of all citizens (order across partitions may differ): "
          f"1 process {every['one']}, 2 processes {every['two']}; "
          f"{notifications['duplicate_records']} re-sent duplicate record(s)")
    if notifications["short_runs"]:
        print(f"ERROR: drains short of every copy: {notifications['short_runs']}")
    if notifications["uncommitted_runs"]:
        print(f"ERROR: drains not committed: {notifications['uncommitted_runs']}")


def run(args: argparse.Namespace) -> int:
    """The whole benchmark; writes the results file and prints the table. 1 on a mismatch."""
    backlog, config = build_backlog(args)
    results: dict[str, Any] = {
        **run_info("benchmarks/scaleout.py", faust=faust.__version__,
                   confluent_kafka=confluent_version),
        "code": code_state(), "config": config,
    }
    workdir = Path(tempfile.mkdtemp(prefix="advisering-scaleout-"))
    rounds = measure_rounds(args, backlog, workdir)
    results["rounds"] = rounds
    results["summary"] = summary(rounds)
    results["notifications"] = check = notification_check(rounds)
    print_table(rounds, results["summary"], check)
    output = args.output or RESULTS
    write_results(output, results)
    log(f"results written to {output}; worker logs in {workdir}")
    if check["same"] and not check["short_runs"] and not check["uncommitted_runs"]:
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    log("ERROR: the drains did not all notify the same, some copies were never processed, "
        f"or offsets were never committed; worker logs kept in {workdir}")
    return 1

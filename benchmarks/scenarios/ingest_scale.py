"""Ingest scenario 5: two `serve` processes on one port (SO_REUSEPORT) against one, in one run.

Both servers run side by side, each on a port of its own (the idle one costs
next to nothing). Every round measures one and then the other, for one event
per request and for batches, the order swapped every round so that a busy
stretch of a shared host hits both alike. Reported per mode: each
measurement's events/s, latency and server CPU (the two-process server's
children included), and the ratio TWO / ONE of every round's pair with its
median, the figure to quote.

On a 2-core machine that also runs the broker and this load generator (whose
aiohttp client costs about as much CPU per request as the server), two server
processes compete with both for the cores: read the ratio with the
``other`` and ``client`` columns beside it.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from harness import log

from scenarios.ingest_server import serving

if TYPE_CHECKING:
    from scenarios.ingest_run import IngestRun

MODES = (("single", False), ("batched", True))


def _summary(measured: dict[str, Any]) -> dict[str, Any]:
    cpu = measured["cpu"]
    return {
        "events_per_s": measured["events_per_s"],
        "request_latency": measured["request_latency"],
        "server_us_cpu_per_event": cpu.get("server", {}).get("us_per_event"),
        "server_cores": cpu.get("server", {}).get("cores"),
        "client_cores": cpu.get("client", {}).get("cores"),
        "broker_cores": cpu.get("broker", {}).get("cores"),
        "other_processes_cores": cpu.get("other_processes_cores"),
        "statuses": measured["statuses"],
    }


def scale_phase(run: IngestRun) -> dict[str, Any]:
    """Rounds of (one process, two processes) per mode, alternating; the pairs' ratios."""
    args = run.args
    log(f"5. two serve processes against one, {args.scale_rounds} rounds, alternating")
    one = run.server("serve-scale-1.log")
    two = run.server("serve-scale-2.log", processes=2)
    out: dict[str, Any] = {"rounds": args.scale_rounds,
                           **{mode: {"one": [], "two": [], "ratios": []} for mode, _ in MODES}}
    with serving(one, args.ready_timeout), serving(two, args.ready_timeout):
        for number in range(args.scale_rounds):
            order = ((1, one), (2, two)) if number % 2 == 0 else ((2, two), (1, one))
            for mode, batched in MODES:
                pair = {processes: run.ingest(f"scale {mode}, {processes} process(es), "
                                              f"round {number + 1}", server, batched)
                        for processes, server in order}
                row = out[mode]
                row["one"].append(_summary(pair[1]))
                row["two"].append(_summary(pair[2]))
                ratio = pair[2]["events_per_s"] / pair[1]["events_per_s"]
                row["ratios"].append(round(ratio, 3))
                log(f"  round {number + 1} {mode}: 1 process {pair[1]['events_per_s']:,} "
                    f"events/s, 2 processes {pair[2]['events_per_s']:,} -> {ratio:.2f}x")
    for mode, _ in MODES:
        ratios = out[mode]["ratios"]
        out[mode]["median_ratio"] = round(statistics.median(ratios), 3) if ratios else None
    return out


def print_scale(scale: dict[str, Any]) -> None:
    """The scale-out table: per mode and round, both servers, and the median ratio."""
    print(f"\ntwo serve processes / one ({scale['rounds']} rounds, alternating; server CPU "
          "includes the children):")
    print(f"  {'mode':8s} {'round':>5s} {'1p ev/s':>9s} {'2p ev/s':>9s} {'ratio':>6s} "
          f"{'1p srv':>7s} {'2p srv':>7s} {'2p cl':>6s} {'2p oth':>6s}  (cores)")
    for mode, _ in MODES:
        row = scale[mode]
        for number, (one, two, ratio) in enumerate(
                zip(row["one"], row["two"], row["ratios"], strict=True), start=1):
            print(f"  {mode:8s} {number:>5d} {one['events_per_s']:>9,} "
                  f"{two['events_per_s']:>9,} {ratio:>6.2f} {one['server_cores'] or 0:>7.2f} "
                  f"{two['server_cores'] or 0:>7.2f} {two['client_cores'] or 0:>6.2f} "
                  f"{two['other_processes_cores'] or 0:>6.2f}")
        print(f"  {mode}: median of the pairs' ratios = {row['median_ratio']}x")

"""Soak: hours-shaped load at the national peak rate, through serve, on a three-broker cluster.

For --minutes (default 30) a simulated municipality (advisering.dev.simulator,
sized to the run) is posted to `advisering serve`'s HTTP ingest at --rate
events/s (default 200, the national peak on paper), in windows of 0.1 s, one
request per source system with that source's API key. Two `advisering worker`
processes share one consumer group on a fresh local cluster of three KRaft
nodes (`advisering kafka start --brokers 3`; topics applied as declared:
replication factor 3, min ISR 2). serve runs its inbox, fed from
advisering.notifications into its own SQLite database.

Every --interval seconds (default 30) it samples:
  - RSS and open file descriptors (and CPU seconds) of serve, each worker and
    each broker JVM, from /proc;
  - the worker group's lag (uncommitted records on advisering.case-events and
    the repartition topic) and the inbox consumer's lag on notifications
    (advisering.testing.group_lag);
  - publish->inbox latency p50/p99 of the notifications that became visible in
    the window: from the ingest's 202 for the triggering event arriving at
    this client to the notification's row being readable in serve's inbox
    database, polled every 50 ms (benchmarks/scenarios/soak_inbox.py).
After posting ends it waits (--drain-timeout) until both groups have
committed everything, and takes a last sample.

Nothing is restarted: a worker, serve or broker that exits is reported
(``!! ... EXITED``), the run goes on where it can (serve gone ends it), and
the exit code is 1. So it is for refused or unacknowledged events, a
simulator that ran out, notifications whose trigger was never acknowledged,
or a drain that did not finish. Everything started is stopped at the end,
also on Ctrl-C or SIGTERM; the broker data is deleted (--keep-data keeps it),
the logs stay in the work directory.

Output: the tables on stdout and benchmarks/results/soak-latest.{md,csv,json}
with the plot benchmarks/results/soak-latest.png (RSS per process, lags,
latency over time; matplotlib, the bench extra).

Usage (ports of your own: brokers P..P+2, controllers P+100..P+102, serve S,
the workers' web pages S+1 and S+2):

    .venv/bin/python benchmarks/soak.py --kafka-port 26092 --serve-port 26080
    .venv/bin/python benchmarks/soak.py --minutes 3 --kafka-port 26092 --serve-port 26080
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Ports of other brokers and tests on this machine that the soak must not use.
FOREIGN_PORTS = (9092, 19092, 19192, 19292, 19492, 20092, 29092, 39092, 39192, 49092)


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    found.add_argument("--minutes", type=float, default=30.0, help="posting time")
    found.add_argument("--rate", type=float, default=200.0, help="events per second")
    found.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    found.add_argument("--window", type=float, default=0.1,
                       help="seconds of events posted together (one request per source)")
    found.add_argument("--kafka-port", type=int, default=26092,
                       help="first broker port (brokers P..P+2, controllers P+100..P+102)")
    found.add_argument("--serve-port", type=int, default=26080,
                       help="serve's port; the workers' web pages use the next two")
    found.add_argument("--seed", type=int, default=1)
    found.add_argument("--days", type=int, default=30, help="simulated days")
    found.add_argument("--citizens", type=int, default=0,
                       help="simulated citizens (0: enough for rate x minutes, 10%% to spare)")
    found.add_argument("--ready-timeout", type=float, default=300.0,
                       help="seconds serve and the worker group may take to be ready")
    found.add_argument("--drain-timeout", type=float, default=300.0,
                       help="seconds after posting for both groups to commit everything")
    found.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                       help="an extra setting for both workers, e.g. "
                            "ADVISERING_WORKER_STORE=rocksdb://")
    found.add_argument("--workdir", type=Path, default=None,
                       help="logs, inbox, cluster data (default: a new folder in /tmp)")
    found.add_argument("--keep-data", action="store_true", help="keep the brokers' data")
    found.add_argument("--output", type=Path, default=None,
                       help="results path without suffix (default benchmarks/results/soak-latest)")
    return found


def main(argv: list[str] | None = None) -> int:
    found = parser()
    args = found.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.interval <= 0 or args.window <= 0:
        found.error("--minutes, --rate, --interval and --window must be positive")
    if any("=" not in pair for pair in args.worker_env):
        found.error("--worker-env takes NAME=VALUE")
    ours = {args.kafka_port + i for i in range(3)} | {args.kafka_port + 100 + i for i in range(3)}
    if ours & set(FOREIGN_PORTS) or args.serve_port in FOREIGN_PORTS:
        found.error("use ports of your own (for example --kafka-port 26092 --serve-port 26080)")
    from scenarios.soak_run import run  # noqa: PLC0415 (imports faust, confluent-kafka)

    return run(args)


if __name__ == "__main__":
    sys.exit(main())

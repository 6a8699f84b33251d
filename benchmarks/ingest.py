"""Throughput and latency of the HTTP ingest, against confluent-kafka producing directly.

Measured in one run on one broker, on the same simulated events (CPR parties,
from advisering.dev.simulator):

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
4. scale-out       two `serve` processes on one port (ADVISERING_SERVE_PROCESSES=2)
                   against one, both modes, --scale-rounds rounds alternating; the
                   ratio of each round's pair and their median (the figure to quote).

Besides: the CPU cost of the edge steps per event, in this process (parse,
deep copy, pseudonymise, CPR scan, pydantic validation, encode); the CPU used
by the server (event loop thread, librdkafka threads, others), the broker and
this client in each phase; the server's own produce-to-ack time per request
(from its /metrics). ``--profile`` also runs the two ingest phases against a
second server under cProfile and prints where its event loop spends its time.
``--edge-only`` times the edge steps alone (no broker): run it with
PYTHONPATH set to another checkout to time that tree's code with this script.

Usage (a broker of your own; topics applied):

    ADVISERING_KAFKA_PORT=49192 .venv/bin/advisering kafka start --fresh
    ADVISERING_KAFKA_PORT=49192 .venv/bin/advisering topics apply --replication-factor 1
    .venv/bin/python benchmarks/ingest.py --bootstrap 127.0.0.1:49192 --events 20000

Writes benchmarks/results/ingest-latest.json. Every wait has a timeout and the
server subprocess is always stopped (SIGTERM, then SIGKILL). The scenarios are
in benchmarks/scenarios/, one module each; the shared pieces in benchmarks/harness/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scenarios.ingest_run import RESULTS, run
from scenarios.ingest_server import stop_on_signals

# Ports of other brokers on this machine that a benchmark must not write to.
FOREIGN_PORTS = (9092, 29092, 39092, 39192, 39292, 49092)


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    found.add_argument("--bootstrap", default="127.0.0.1:49192")
    found.add_argument("--events", type=int, default=20000)
    found.add_argument("--citizens", type=int, default=0,
                       help="simulated citizens (default: enough for --events)")
    found.add_argument("--seed", type=int, default=1)
    found.add_argument("--concurrency", type=int, default=16, help="HTTP clients")
    found.add_argument("--batch", type=int, default=100, help="events per batched request")
    found.add_argument("--warmup", type=int, default=200, help="unmeasured events per phase")
    found.add_argument("--max-events", type=int, default=1000,
                       help="ADVISERING_INGEST_MAX_EVENTS of the server")
    found.add_argument("--direct-rounds", type=int, default=3,
                       help="runs of the (short) direct flood; the median is reported")
    found.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                       help="first wait up to this long until other processes use less "
                            "than 0.25 cores")
    found.add_argument("--repeats", type=int, default=5, help="edge step timings: best of")
    found.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds")
    found.add_argument("--request-timeout", type=float, default=30.0, help="per HTTP request")
    found.add_argument("--ready-timeout", type=float, default=60.0)
    found.add_argument("--scale-rounds", type=int, default=3,
                       help="rounds of two serve processes against one (ADVISERING_SERVE_"
                            "PROCESSES=2 vs 1), each mode per round; 0 skips them")
    found.add_argument("--profile", action="store_true",
                       help="also run both ingest phases against a cProfiled server")
    found.add_argument("--switch-interval", type=float, action="append", default=[],
                       metavar="SECONDS",
                       help="also run both ingest phases against a server with this GIL "
                            "switch interval (sys.setswitchinterval; Python's default is "
                            "0.005); repeatable")
    found.add_argument("--edge-only", action="store_true",
                       help="only the edge steps on one core (no broker, no server); with "
                            "PYTHONPATH set to another checkout it times that tree's code")
    found.add_argument("--output", type=Path, default=RESULTS)
    return found


def main(argv: list[str] | None = None) -> int:
    found = parser()
    args = found.parse_args(argv)
    stop_on_signals()
    if any(server.strip().endswith(f":{port}") for server in args.bootstrap.split(",")
           for port in FOREIGN_PORTS):
        found.error("use a broker of your own (for example 127.0.0.1:49192)")
    if args.events < 1 or args.concurrency < 1 or not 1 <= args.batch <= args.max_events:
        found.error("--events and --concurrency must be >= 1, 1 <= --batch <= --max-events")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

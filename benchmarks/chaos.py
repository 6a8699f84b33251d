"""Chaos under load, the long version of tests/chaos/ (same harness: tests/chaos/harness.py).

More citizens (so more events and notifications) and more rounds: the five
faults (SIGKILL the busiest leader and restart it; SIGSTOP a worker past its
session timeout, then SIGCONT; SIGKILL the other worker, restarted by the
harness as a supervisor; restart `serve` with a request in flight; stop all
three brokers for 20 s) are injected ``--rounds`` times one after another,
under a steady load through the HTTP ingest. At the end it checks what the
test checks (every acknowledged event on the topic, the inbox equal to the
oracle, one row per id, only the planted dead letters, `rules backtest` over
the topic agreeing per rule) and prints the table. Exit code 1 when any
check fails; the table is printed either way.

Usage (its own ports: brokers PORT..PORT+2, controllers PORT+100..PORT+102):

    .venv/bin/python benchmarks/chaos.py --port 25092 --serve-port 25080 \\
        --citizens 30000 --rounds 3 --rate 60

State and logs stay in --dir (default: a new temporary directory, printed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    found.add_argument("--port", type=int, default=25092, help="first broker port")
    found.add_argument("--serve-port", type=int, default=25080)
    found.add_argument("--citizens", type=int, default=30_000,
                       help="simulated citizens (about 0.45 events each over 10 days)")
    found.add_argument("--clients", type=int, default=4)
    found.add_argument("--rate", type=float, default=60.0, help="events/s during the faults")
    found.add_argument("--rounds", type=int, default=3, help="times the five faults are injected")
    found.add_argument("--dir", type=Path, default=None, help="state and logs of the run")
    return found


def main(argv: list[str] | None = None) -> int:
    found = parser()
    args = found.parse_args(argv)
    if args.rounds < 1:
        found.error("--rounds must be at least 1")
    if args.port in (9092, 19092, 19492, 19792):
        found.error("use ports of your own (the demo's and the tests' are taken)")
    sys.path.insert(0, str(ROOT))
    from tests.chaos.harness import Plan, run  # noqa: PLC0415 - needs the repository on the path
    from tests.chaos.system import Ports  # noqa: PLC0415

    run_dir = args.dir or Path(tempfile.mkdtemp(prefix="advisering-chaos-"))
    print(f"state and logs: {run_dir}", flush=True)
    plan = Plan(citizens=args.citizens, clients=args.clients, rate=args.rate,
                rounds=args.rounds)
    outcome = run(plan, Ports(args.port, args.serve_port), run_dir)
    print(outcome.table())
    for problem in outcome.problems:
        print(f"PROBLEM: {problem}")
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""`advisering simulate`: a synthetic municipality to a file, Kafka or the HTTP ingest."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from advisering.cli.errors import UserError
from advisering.settings import Settings


def _start(value: str) -> dt.datetime:
    from advisering.dev.simulator import CET

    day = dt.date.fromisoformat(value)
    return dt.datetime(day.year, day.month, day.day, tzinfo=CET)


def _register(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev import sim_publish
    from advisering.kafka.topics import default_vocabulary

    added, rotated = sim_publish.register_sources(
        settings.sources_file, args.register_sources, default_vocabulary(settings.topics_dir),
        settings.sources_rotation_grace)
    print(f"{len(added)} simulated source systems registered in {settings.sources_file}"
          + (f", {len(rotated)} given a new key ({', '.join(rotated)})" if rotated else "")
          + f"; their API keys are in {args.register_sources} (for --api-keys).")
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev import sim_publish
    from advisering.dev.simulator import Municipality, simulate

    if args.register_sources is not None:
        return _register(args, settings)
    if args.work_dir is not None and not args.work_dir.is_dir():
        raise UserError(f"--work-dir {args.work_dir} is not a directory")
    municipality = Municipality(seed=args.seed, citizens=args.citizens, days=args.days,
                                start=args.start)
    events = simulate(municipality, args.work_dir)
    if args.publish == "file":
        if args.out == "-":
            count = sim_publish.write_jsonl(events, sys.stdout.buffer)
        else:
            with Path(args.out).open("wb") as out:
                count = sim_publish.write_jsonl(events, out)
        print(f"{count} events written", file=sys.stderr)
        return 0
    pacer = sim_publish.Pacer(args.rate)
    sent = 0
    if args.publish == "kafka":
        from advisering.edge.client import Publisher

        with Publisher(settings) as publisher:
            for batch in sim_publish.batches(events, args.batch):
                results = publisher.publish(batch)
                sent += sum(1 for r in results if r.ok)
                pacer.wait(len(batch))
    else:
        if not args.url or not args.api_keys:
            raise UserError("--publish http needs --url and --api-keys")
        sender = sim_publish.HttpSender(args.url, sim_publish.load_api_keys(args.api_keys))
        for batch in sim_publish.batches(events, args.batch):
            sent += sender.send(batch)
            pacer.wait(len(batch))
    print(f"{sent} events published through {args.publish}")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev.demo import run_demo

    return run_demo(settings, exit_after_scenario=args.once, rate=args.rate)


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the development verbs: `demo` and `simulate`."""
    demo = verbs.add_parser("demo", help="all of it on one machine, with a simulated municipality")
    demo.add_argument("--once", action="store_true",
                      help="exit when the built-in scenario has been shown (for smoke tests)")
    demo.add_argument("--rate", type=float, default=20.0,
                      help="events per second from the simulated municipality (default 20)")
    demo.set_defaults(handler=_demo)

    sim = verbs.add_parser("simulate", help="a deterministic synthetic municipality")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--citizens", type=int, default=10_000)
    sim.add_argument("--days", type=int, default=30)
    sim.add_argument("--start", type=_start, default=_start("2026-11-01"),
                     help="first day of the period (YYYY-MM-DD, default 2026-11-01)")
    sim.add_argument("--publish", choices=("file", "kafka", "http"), default="file")
    sim.add_argument("--out", default="-", help="JSON-lines file for --publish file (- = stdout)")
    sim.add_argument("--url", default=None, help="advisering serve URL for --publish http")
    sim.add_argument("--api-keys", type=Path, default=None,
                     help="YAML mapping of source name to API key for --publish http")
    sim.add_argument("--rate", type=float, default=0.0, help="events per second (0: no limit)")
    sim.add_argument("--batch", type=int, default=100, help="events per request or flush")
    sim.add_argument("--register-sources", type=Path, default=None, metavar="KEYS_FILE",
                     help="register the simulated source systems with their grants in "
                          "ADVISERING_SOURCES_FILE, write their API keys to KEYS_FILE, and exit")
    sim.add_argument("--work-dir", type=Path, default=None, help="where day buckets are kept")
    sim.set_defaults(handler=_simulate)

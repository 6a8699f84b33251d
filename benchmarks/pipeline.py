"""Throughput and latency of the advisory pipeline, against its own baselines.

Measured in one run on one broker, on the same PRELOADED synthetic events
(keyed as the edge keys them: the first party's pseudonym, murmur2):

1. engine   the pure engine on one core, no Kafka, as the worker runs it on a
            validated event: decode (orjson), process (the real rules of
            rules/ and topics/), orjson of the notifications. Beside it:
            intake validation + engine, and the worker's own per-record steps.
2. raw      a confluent-kafka consume -> json.loads -> json.dumps -> produce
            loop over the preloaded topic, in this process: the ceiling.
3. faust    two Faust passthroughs (benchmarks/faust_passthrough.py) run as
            worker subprocesses: ``bare`` (one agent, ``await topic.send`` per
            record) and ``batched`` (the worker's batches and batched sends,
            no work): Faust's own ceiling for this worker's design.
4. bus      `advisering worker` end to end on advisering.case-events (events/s
            until every citizen copy went through the engine), then, caught
            up, publish-to-notification latency (p50/p99) at --latency-rate.

Each round runs all of 2-4 after an engine pass, for --rounds rounds. The
figures are judged on paired ratios: per round, the worker against the raw
loop (and the passthroughs) measured seconds apart; the median of the rounds'
pairs is the figure (target: worker / raw >= 0.15, stretch 0.2). On a shared
host the speed drifts by tens of per cent within minutes, and a pair is
measured close together. Best-versus-best is printed too. ``--profile`` adds
cProfile runs of the passthroughs and the worker: where a worker's
microsecond goes.

Usage (a broker of your own; topics applied):

    ADVISERING_KAFKA_PORT=49092 .venv/bin/advisering kafka start --fresh
    ADVISERING_KAFKA_PORT=49092 ADVISERING_BOOTSTRAP_SERVERS=127.0.0.1:49092 \
        .venv/bin/advisering topics apply --replication-factor 1
    .venv/bin/python benchmarks/pipeline.py --bootstrap 127.0.0.1:49092 --events 20000
    .venv/bin/python benchmarks/pipeline.py --bootstrap 127.0.0.1:49092 --events 20000 --profile
    .venv/bin/python benchmarks/pipeline.py --engine-only --events 20000   # no broker

Writes benchmarks/results/pipeline-latest.json (--engine-only:
pipeline-engine-latest.json). Every wait has a timeout. The scenarios are in
benchmarks/scenarios/, one module each; the shared pieces in benchmarks/harness/.
To compare the engine of two checkouts, see benchmarks/engine_compare.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    found.add_argument("--bootstrap", default="127.0.0.1:49092")
    found.add_argument("--events", type=int, default=20000)
    found.add_argument("--citizens", type=int, default=5000,
                       help="at most this many (never more than events/4)")
    found.add_argument("--latency-events", type=int, default=400)
    found.add_argument("--latency-rate", type=float, default=40.0, help="events per second")
    found.add_argument("--repeats", type=int, default=7, help="engine rounds; best is kept")
    found.add_argument("--rounds", type=int, default=5,
                       help="passthrough and bus runs, alternating; best is kept (shared host)")
    found.add_argument("--seed", type=int, default=20261129)
    found.add_argument("--timeout", type=float, default=600.0,
                       help="per Kafka phase, seconds")
    found.add_argument("--profile", action="store_true",
                       help="also cProfile the engine, the passthrough and the worker")
    found.add_argument("--variant", action="append", default=[], metavar="NAME=ENV=VALUE[,...]",
                       help="also run passthrough and bus with these Faust settings from the "
                            "environment, e.g. linger5ms=PRODUCER_LINGER=0.005")
    found.add_argument("--engine-only", action="store_true",
                       help="only scenario 1, the engine on one core (no broker needed)")
    found.add_argument("--output", type=Path, default=None,
                       help="results file (default benchmarks/results/pipeline-latest.json, "
                            "with --engine-only pipeline-engine-latest.json)")
    return found


def variants(found: argparse.ArgumentParser, specs: list[str]) -> dict[str, dict[str, str]]:
    """--variant NAME=ENV=VALUE[,ENV=VALUE] by name."""
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        name, _, assignments = spec.partition("=")
        pairs = [a.partition("=") for a in assignments.split(",") if a]
        if not name or not pairs or any(not k or not sep for k, sep, _ in pairs):
            found.error(f"--variant {spec!r}: use NAME=ENV=VALUE[,ENV=VALUE]")
        out[name] = {k: v for k, _, v in pairs}
    return out


def main(argv: list[str] | None = None) -> int:
    found = parser()
    args = found.parse_args(argv)
    by_name = variants(found, args.variant)
    if args.engine_only:
        from scenarios.engine import run_engine_only  # noqa: PLC0415 (no Kafka code needed)

        return run_engine_only(args)
    if any(args.bootstrap.endswith(f":{port}") for port in (9092, 29092, 39092, 39192)):
        found.error("use your own broker (for example 127.0.0.1:49092)")
    from scenarios.pipeline_run import run  # noqa: PLC0415 (imports faust, confluent-kafka)

    return run(args, by_name)


if __name__ == "__main__":
    sys.exit(main())

"""Scale-out on one machine: two worker processes in one group against one, same backlog.

The synthetic events of benchmarks/pipeline.py (keyed as the edge keys them)
are built once. Each round drains them twice, each time in a fresh group
(a fresh ADVISERING_WORKER_APP_ID, so fresh repartition and changelog topics
and empty state):

  one   one `advisering worker` process;
  two   two processes with the same app id (one consumer group), each with its
        own web port and data directory, sharing the 6 partitions.

Odd rounds run ``one`` first, even rounds ``two`` first. The figure is the
median of the rounds' ratios two/one: a pair is measured a minute apart, so
a shared host's drift hits both sides of it alike.

When the clock starts. A second member joining a group that is already
draining a preloaded backlog is no measurement: tried here with 4,000
events, the first member was assigned all six partitions about 0.4 s before
the second one joined, took the whole backlog alone during the 3-5 s the
rebalance took (the group waits for the first member's next heartbeat,
then both recover their tables), and could not commit meanwhile, so after
the rebalance both members processed it again (the state's memory of seen
events makes that harmless, but it doubles the work). So the members join a
group whose offsets on advisering.case-events stand at the topic's end, with
nothing to consume; the backlog is published once the group has settled:
every member in it, the group Stable, each member owning case-events
partitions and all six owned, every member's /readyz 200, twice in a row.
The time that took is reported apart, as ``settle_s`` (from spawning the
processes) and ``rebalance_s`` (from the first member's assignment to the
settled group: what the second member's join cost), and never counted as
throughput. The records published are the same every round (the same
events, ids and keys), appended to advisering.case-events (about 0.2 s for
20,000 events, far faster than any worker drains them); each group starts
at the end, so it reads its own copy only.

From there the drain is measured as benchmarks/scenarios/worker.py measures
one worker: from the first record the group writes to its own topics
(changelog or repartition) to the last CreateTime on its output topics,
once the members' /metrics together count every citizen copy through the
engine (advisering_processing_seconds_count, summed). Rates are citizen
copies per second, as pipeline.py's worker figure. Should the count stop
short while the group's lag on case-events and the repartition topic is 0,
the drain ends there and is reported as short (an error). Consumer-group lag
0 is then awaited (2 minutes at most; a group that processed but did not
commit is an error too) before the members stop.

CPU: each worker process, the broker and the rest of the host, from the
first output record to the end (harness/cpu.py). On a 2-core machine the
broker runs beside the workers and takes its share; ``others`` shows
whatever else ran. Before each drain the script waits (--wait-quiet, at
most 60 s by default) until other processes use under a quarter of a core:
two workers need both cores, and a drain beside another benchmark measures
that benchmark.

Notifications: distinct notification ids for the benchmark's citizens are
counted per drain (a re-sent duplicate counts once; duplicates are reported).
Those of the citizens who are the first party of every event they are in
must be the same in every drain: each one's events share one partition and
reach its overview in one order, with one process or two. A mismatch there,
a short drain or an uncommitted one is an error: the table and the results
file are written, and the exit code is 1. The count over all citizens is printed by setup but
not held equal: a child's copy of a parent's children's-case event comes from
the parent's partition, in an order no setup fixes (docs/operators.md,
"Ordering"), and rules such as ny-boernesag-orientering see it differently
from one drain to the next, even between two drains of one process.

Usage (a broker of your own; topics applied):

    ADVISERING_KAFKA_PORT=49092 .venv/bin/advisering kafka start --fresh
    ADVISERING_KAFKA_PORT=49092 ADVISERING_BOOTSTRAP_SERVERS=127.0.0.1:49092 \\
        .venv/bin/advisering topics apply --replication-factor 1
    .venv/bin/python benchmarks/scaleout.py --bootstrap 127.0.0.1:49092 --events 20000 --rounds 5

Writes benchmarks/results/scaleout-latest.json. Every wait has a timeout.
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
    found.add_argument("--rounds", type=int, default=5,
                       help="rounds of one process and two, alternating which goes first")
    found.add_argument("--seed", type=int, default=20261129)
    found.add_argument("--timeout", type=float, default=600.0, help="per drain, seconds")
    found.add_argument("--settle-timeout", type=float, default=120.0,
                       help="seconds the members may take to start and settle in the group")
    found.add_argument("--wait-quiet", type=float, default=60.0,
                       help="before each drain, wait at most this many seconds until other "
                            "processes use under a quarter of a core (0: do not wait)")
    found.add_argument("--output", type=Path, default=None,
                       help="results file (default benchmarks/results/scaleout-latest.json)")
    return found


def main(argv: list[str] | None = None) -> int:
    found = parser()
    args = found.parse_args(argv)
    if args.rounds < 1:
        found.error("--rounds must be at least 1")
    if any(args.bootstrap.endswith(f":{port}") for port in (9092, 29092, 39092, 39192)):
        found.error("use your own broker (for example 127.0.0.1:49092)")
    from scenarios.scaleout_run import run  # noqa: PLC0415 (imports faust, confluent-kafka)

    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""`advisering kafka start|stop|status` and `advisering topics apply`: the broker and its topics."""

from __future__ import annotations

import argparse
from pathlib import Path

from advisering.settings import Settings


def _kafka_start(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev.local_kafka import KAFKA_VERSION, LocalKafka

    result = LocalKafka(settings).start(fresh=args.fresh)
    print(result.message)
    if result.started:
        print(f"  bootstrap: {result.status.bootstrap}")
        print(f"  broker log: {result.status.log_file}")
        print(f"  Apache Kafka {KAFKA_VERSION} (KRaft), started in {result.seconds:.1f}s")
    return 0


def _kafka_stop(_args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev.local_kafka import LocalKafka

    stopped = LocalKafka(settings).stop()
    print("Kafka stopped." if stopped else "Kafka was not running.")
    return 0


def _kafka_status(_args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev.local_kafka import LocalKafka

    status = LocalKafka(settings).status()
    if status.running:
        print(f"Kafka is running at {status.bootstrap} (pid {status.pid}).")
        print(f"  broker log: {status.log_file}")
        return 0
    print(f"Kafka is not running (would listen on {status.bootstrap}).")
    return 3


def _topics_apply(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.kafka import apply as topic_apply
    from advisering.kafka.topics import citizen_topic_spec, load_topic_specs

    directory = args.dir or settings.topics_dir
    replicas = args.replication_factor or settings.topic_replication_factor
    specs = [
        spec.effective(args.partitions or settings.topic_partitions, replicas)
        for spec in load_topic_specs(directory).values()
    ]
    # The worker's repartition topic always has the worker's partitions.
    specs.append(citizen_topic_spec(directory, settings).effective(None, replicas))
    admin = topic_apply.admin_client(settings.bootstrap_servers)
    changes = topic_apply.plan(admin, specs)
    print(f"Plan for {settings.bootstrap_servers}:")
    for change in changes:
        print(f"  {change.describe()}")
    if args.dry_run:
        print("Dry run: nothing changed.")
        return 0
    if all(change.action == "unchanged" for change in changes):
        print("Nothing to do.")
        return 0
    topic_apply.execute(admin, specs, changes)
    print("Applied.")
    return 0


def positive(value: str) -> int:
    """An argparse type: a whole number of at least one."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `kafka` and `topics` verbs."""
    kafka = verbs.add_parser("kafka", help="a local single-node Apache Kafka (KRaft)")
    kafka_verbs = kafka.add_subparsers(dest="kafka_verb", required=True, metavar="ACTION")
    start = kafka_verbs.add_parser("start", help="start the local broker (no-op if running)")
    start.add_argument("--fresh", action="store_true", help="wipe the broker's data first")
    start.set_defaults(handler=_kafka_start)
    kafka_verbs.add_parser("stop", help="stop the local broker").set_defaults(handler=_kafka_stop)
    kafka_verbs.add_parser("status", help="is the local broker running?").set_defaults(
        handler=_kafka_status
    )

    topics = verbs.add_parser("topics", help="topics as code (topics/*.yaml)")
    topics_verbs = topics.add_subparsers(dest="topics_verb", required=True, metavar="ACTION")
    apply = topics_verbs.add_parser("apply", help="create missing topics, alter changed configs")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.add_argument("--dir", type=Path, default=None, help="topic files (default topics/)")
    apply.add_argument("--partitions", type=positive, default=None,
                       help="override every topic's partitions (development)")
    apply.add_argument("--replication-factor", type=positive, default=None,
                       help="override every topic's replication factor (one-node broker: 1)")
    apply.set_defaults(handler=_topics_apply)

"""The `advisering` command: one entry point, one verb per capability.

Settings are read once here and passed down. Human-facing output goes to
stdout; structured logs go to stderr. Errors the user can act on exit with
status 2 and a message that says what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from advisering.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


class UserError(Exception):
    """An error whose message is meant for the person at the terminal."""


def _kafka_start(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.broker.local_kafka import KAFKA_VERSION, LocalKafka  # noqa: PLC0415

    result = LocalKafka(settings).start(fresh=args.fresh)
    print(result.message)
    if result.started:
        print(f"  bootstrap: {result.status.bootstrap}")
        print(f"  broker log: {result.status.log_file}")
        print(f"  Apache Kafka {KAFKA_VERSION} (KRaft), started in {result.seconds:.1f}s")
    return 0


def _kafka_stop(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.broker.local_kafka import LocalKafka  # noqa: PLC0415

    stopped = LocalKafka(settings).stop()
    print("Kafka stopped." if stopped else "Kafka was not running.")
    return 0


def _kafka_status(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.broker.local_kafka import LocalKafka  # noqa: PLC0415

    status = LocalKafka(settings).status()
    if status.running:
        print(f"Kafka is running at {status.bootstrap} (pid {status.pid}).")
        print(f"  broker log: {status.log_file}")
        return 0
    print(f"Kafka is not running (would listen on {status.bootstrap}).")
    return 3


def _topics_apply(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.broker import topic_apply  # noqa: PLC0415
    from advisering.broker.topic_specs import load_topic_specs  # noqa: PLC0415

    specs = [
        spec.effective(
            args.partitions or settings.topic_partitions,
            args.replication_factor or settings.topic_replication_factor,
        )
        for spec in load_topic_specs(args.dir or settings.topics_dir).values()
    ]
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


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.demo import run_demo  # noqa: PLC0415

    return run_demo(settings, exit_after_scenario=args.once, rate=args.rate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advisering",
        description="Cross-system advisory bus for Danish municipalities.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

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
    apply.add_argument("--dir", type=_path, default=None, help="topic files (default topics/)")
    apply.add_argument("--partitions", type=_positive, default=None,
                       help="override every topic's partitions (development)")
    apply.add_argument("--replication-factor", type=_positive, default=None,
                       help="override every topic's replication factor (one-node broker: 1)")
    apply.set_defaults(handler=_topics_apply)

    demo = verbs.add_parser("demo", help="all of it on one machine, with a simulated municipality")
    demo.add_argument("--once", action="store_true",
                      help="exit when the built-in scenario has been shown (for smoke tests)")
    demo.add_argument("--rate", type=float, default=20.0,
                      help="events per second from the simulated municipality (default 20)")
    demo.set_defaults(handler=_demo)

    for register in _extra_verbs():
        register(verbs)
    return parser


def _extra_verbs() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Verbs that live in their own modules, to keep this one short."""
    from advisering import (  # noqa: PLC0415
        cli_deploy,
        cli_pipeline,
        cli_rules,
        cli_serve,
        cli_simulate,
    )

    return [cli_pipeline.register, cli_serve.register, cli_simulate.register, cli_rules.register,
            cli_deploy.register]


def _path(value: str) -> object:
    from pathlib import Path  # noqa: PLC0415

    return Path(value)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError  # noqa: PLC0415

    from advisering.log import configure_logging  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"advisering: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `advisering simulate | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if _is_user_error(exc):
            print(f"advisering: {exc}", file=sys.stderr)
            return 2
        raise


def _is_user_error(exc: Exception) -> bool:
    from advisering.broker.local_kafka import LocalKafkaError  # noqa: PLC0415
    from advisering.broker.topic_apply import TopicApplyError  # noqa: PLC0415
    from advisering.settings import MissingPseudonymKeyError  # noqa: PLC0415
    from advisering.yamlfiles import YamlFileError  # noqa: PLC0415

    return isinstance(
        exc, UserError | LocalKafkaError | TopicApplyError | YamlFileError
        | MissingPseudonymKeyError
    )


if __name__ == "__main__":
    sys.exit(main())

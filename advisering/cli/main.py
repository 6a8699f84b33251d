"""The `advisering` command: one entry point, one verb per capability.

Settings are read once here and passed down. Human-facing output goes to
stdout; structured logs go to stderr. Errors the user can act on exit with
status 2 and a message that says what to do, never a traceback. Each verb
group lives in its own module and imports its heavy dependencies only when
it runs, so `advisering --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from advisering import __version__
from advisering.cli import audit, db, kafka, pipeline, rules, serve, simulate
from advisering.cli.errors import UserError
from advisering.dev.local_kafka import LocalKafkaError
from advisering.log import configure_logging
from advisering.settings import MissingPseudonymKeyError, Settings, load_settings
from advisering.yamlfiles import YamlFileError

Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every verb group registers its own verbs."""
    parser = argparse.ArgumentParser(
        prog="advisering",
        description="Cross-system advisory bus for Danish municipalities.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for group in (kafka, pipeline, serve, simulate, rules, audit, db):
        group.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; the exit status is what the verb returns (2 for a user error)."""
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
    from advisering.kafka.apply import TopicApplyError
    from advisering.kafka.connection import KafkaSecurityError
    from advisering.rulebook.signing import SigningKeyError

    return isinstance(
        exc, UserError | LocalKafkaError | TopicApplyError | YamlFileError
        | MissingPseudonymKeyError | KafkaSecurityError | SigningKeyError
    )


if __name__ == "__main__":
    sys.exit(main())

"""`advisering worker` and `advisering publish`: the pipeline's verbs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advisering.cli.errors import UserError
from advisering.settings import Settings


def _worker(_args: argparse.Namespace, settings: Settings) -> int:
    from advisering.engine.rules import load_rules
    from advisering.kafka.topics import load_vocabulary
    from advisering.worker.process import run_worker

    vocabulary = load_vocabulary(settings.topics_dir, settings)
    return run_worker(settings, load_rules(settings.rules_dir, vocabulary), vocabulary)


def read_json_lines(path: Path, max_depth: int) -> list[tuple[int, Any, str | None]]:
    """(line number, parsed value or None, "reason: error") for every non-blank line."""
    from advisering.events import Rejection, parse_json

    lines: list[tuple[int, Any, str | None]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            value = parse_json(line, max_depth)  # depth before the parser, like the ingest
            if isinstance(value, Rejection):
                lines.append((number, None, f"{value.reason.value}: {value.message}"))
            else:
                lines.append((number, value, None))
    return lines


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.edge.client import Publisher

    path: Path = args.file
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    lines = read_json_lines(path, settings.json_max_depth)
    rejected = 0
    to_send: list[tuple[int, Any]] = []
    with Publisher(settings) as publisher:
        for number, value, error in lines:
            if error is not None:
                print(f"line {number}: {error}")
                rejected += 1
            else:
                to_send.append((number, value))
        results = publisher.publish(value for _, value in to_send)
    for (number, _), result in zip(to_send, results, strict=True):
        if not result.ok:
            rejected += 1
            where = f" at {result.path}" if result.path else ""
            print(f"line {number}: {result.reason}{where}: {result.message}")
    published = sum(1 for r in results if r.ok)
    print(f"{path}: {published} published, {rejected} rejected, {len(lines)} lines")
    return 1 if rejected else 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the pipeline's verbs: `worker` and `publish`."""
    worker = verbs.add_parser("worker", help="run the Faust stream processor")
    worker.set_defaults(handler=_worker)
    publish = verbs.add_parser("publish", help="publish JSON-lines case events")
    publish.add_argument("file", type=Path, help="one CloudEvent per line; CPR parties allowed")
    publish.set_defaults(handler=_publish)

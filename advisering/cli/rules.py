"""`advisering rules validate | test | backtest | deploy | status`: the operators' rule tooling.

Deploy and status live in :mod:`advisering.cli.deploy`; this module assembles all actions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from advisering.cli import deploy
from advisering.cli.errors import UserError
from advisering.settings import Settings

if TYPE_CHECKING:
    from advisering.engine.matcher import Matcher


def _print_json(value: object) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.kafka.topics import default_vocabulary
    from advisering.rulebook.validate import validate_directory

    report = validate_directory(args.dir or settings.rules_dir,
                                default_vocabulary(settings.topics_dir, settings))
    for problem in report.problems:
        print(problem)
    print(report.summary())
    return 0 if report.ok else 1


def _load_matcher(directory: Path, settings: Settings) -> Matcher:
    from advisering.engine.matcher import Matcher
    from advisering.engine.rules import load_rules
    from advisering.kafka.topics import default_vocabulary

    return Matcher(load_rules(directory, default_vocabulary(settings.topics_dir, settings)))


def _test(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.kafka.topics import default_vocabulary
    from advisering.rulebook import THROWAWAY_KEY
    from advisering.rulebook.report import trial_lines
    from advisering.rulebook.trial import load_overview, run_trial
    from advisering.worker.steps import state_limits

    for path in (args.scenario, args.overview):
        if path is not None and not path.is_file():
            raise UserError(f"{path}: no such file")
    vocabulary = default_vocabulary(settings.topics_dir, settings)
    matcher = _load_matcher(args.rules or settings.rules_dir, settings)
    overview = (load_overview(args.overview, THROWAWAY_KEY, vocabulary)
                if args.overview is not None else None)
    report = run_trial(args.scenario, matcher, vocabulary, THROWAWAY_KEY, overview,
                       state_limits(settings))
    if args.json:
        _print_json(report.to_json())
    else:
        for line in trial_lines(report):
            print(line)
    return 1 if report.rejected else 0


def _moment(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} has no UTC offset; write e.g. 2026-11-01T00:00+01:00 or ...Z")
    return moment


def _baseline_dir(args: argparse.Namespace, settings: Settings, rules: Path) -> Path | None:
    if args.no_baseline:
        return None
    if args.baseline is not None:
        if not args.baseline.is_dir():
            raise UserError(f"{args.baseline}: baseline rules directory not found")
        return Path(args.baseline)
    deployed = settings.rules_dir
    if deployed.is_dir() and deployed.resolve() != rules.resolve():
        return deployed
    return None


def _backtest(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.kafka.connection import KafkaConnection
    from advisering.kafka.topics import CASE_EVENTS, default_vocabulary
    from advisering.rulebook import THROWAWAY_KEY
    from advisering.rulebook.backtest import Progress, backtest
    from advisering.rulebook.history import HistoryError, file_events, topic_events
    from advisering.rulebook.report import backtest_lines
    from advisering.worker.steps import state_limits

    rules: Path = args.rules or settings.rules_dir
    baseline_dir = _baseline_dir(args, settings, rules)
    vocabulary = default_vocabulary(settings.topics_dir, settings)
    candidate = _load_matcher(rules, settings)
    baseline = _load_matcher(baseline_dir, settings) if baseline_dir is not None else None
    if args.file is not None and (args.start or args.end):
        raise UserError("give either --file or --from/--to, not both")
    if args.file is not None:
        if not args.file.is_file():
            raise UserError(f"{args.file}: no such file")
        events = file_events(args.file, THROWAWAY_KEY, vocabulary)
        source: dict[str, str | None] = {"file": str(args.file)}
    else:
        if args.start is None or args.end is None:
            raise UserError("give --file EVENTS.jsonl, or both --from and --to")
        if args.end < args.start:
            raise UserError("--to is before --from")
        events = topic_events(KafkaConnection.from_settings(settings), CASE_EVENTS,
                              args.start, args.end, vocabulary)
        source = {"topic": CASE_EVENTS, "bootstrap": settings.bootstrap_servers,
                  "from": args.start.isoformat(), "to": args.end.isoformat()}
    source.update({"rules": str(rules), "baseline": str(baseline_dir) if baseline_dir else None})

    def progress(step: Progress) -> None:
        print(f"backtest: {step.events} events, {step.rate:,.0f} events/s, "
              f"{step.citizens} citizens in the overview", file=sys.stderr, flush=True)

    try:
        report = backtest(events, candidate, baseline, every=args.progress_every, source=source,
                          progress=progress if not args.quiet else None,
                          limits=state_limits(settings))
    except HistoryError as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        _print_json(report.to_json())
    else:
        for line in backtest_lines(report, str(rules),
                                   str(baseline_dir) if baseline_dir else None):
            print(line)
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `advisering rules` with every action of the rule lifecycle."""
    rules = verbs.add_parser("rules", help="validate, test, backtest, deploy and inspect rules")
    actions = rules.add_subparsers(dest="rules_verb", required=True, metavar="ACTION")
    validate = actions.add_parser(
        "validate", help="report every problem in a rule directory (file, line, field)")
    validate.add_argument("dir", nargs="?", type=Path, default=None,
                          help="rules directory (default ADVISERING_RULES_DIR)")
    validate.set_defaults(handler=_validate)

    test = actions.add_parser(
        "test", help="run a small scenario: which rules fire, for whom, which almost did")
    test.add_argument("--rules", type=Path, default=None,
                      help="rules directory (default ADVISERING_RULES_DIR)")
    test.add_argument("--scenario", type=Path, required=True,
                      help="JSON-lines events (CPR parties or pseudonyms)")
    test.add_argument("--overview", type=Path, default=None,
                      help="JSON: citizen (pseudonym or CPR) -> list of open cases to start with")
    test.add_argument("--json", action="store_true", help="machine-readable output")
    test.set_defaults(handler=_test)

    back = actions.add_parser(
        "backtest", help="replay history through a candidate rule set; sends nothing")
    back.add_argument("--rules", type=Path, default=None,
                      help="candidate rules directory (default ADVISERING_RULES_DIR)")
    back.add_argument("--baseline", type=Path, default=None,
                      help="rules to compare with (default ADVISERING_RULES_DIR when it "
                           "differs from --rules)")
    back.add_argument("--no-baseline", action="store_true", help="no comparison")
    back.add_argument("--file", type=Path, default=None, help="JSON-lines events to replay")
    back.add_argument("--from", dest="start", type=_moment, default=None,
                      help="replay advisering.case-events from this time (ISO 8601 with offset)")
    back.add_argument("--to", dest="end", type=_moment, default=None,
                      help="... up to this time")
    back.add_argument("--json", action="store_true", help="machine-readable output")
    back.add_argument("--progress-every", type=int, default=100_000,
                      help="progress line on stderr every N events (default 100000)")
    back.add_argument("--quiet", action="store_true", help="no progress on stderr")
    back.set_defaults(handler=_backtest)
    deploy.add_actions(actions)

"""`advisering rules deploy` and `advisering rules status`."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from advisering.settings import Settings

if TYPE_CHECKING:
    from advisering.rulebook.deploy import DeployedState, DeployPlan


def _deploy(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.engine.rules import load_rules
    from advisering.kafka.connection import KafkaConnection
    from advisering.kafka.topics import load_vocabulary
    from advisering.rulebook import deploy as rules_deploy
    from advisering.yamlfiles import YamlFileError

    directory: Path = args.dir or settings.rules_dir
    try:
        ruleset = load_rules(directory, load_vocabulary(settings.topics_dir))
    except YamlFileError as exc:
        print(f"Not deployed: {len(exc.problems)} problem(s) in {directory}:")
        for problem in exc.problems:
            print(f"  {problem}")
        return 1
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    kafka = KafkaConnection.from_settings(settings)
    deployed = rules_deploy.read_deployed(kafka)
    plan = rules_deploy.plan_deploy(ruleset, deployed, now)
    _print_plan(plan, deployed)
    if not (plan.added or plan.changed or plan.removed) and deployed.manifest is not None:
        print("The deployed rule set is already this one; nothing published.")
        return 0
    if args.dry_run:
        print("Dry run: nothing published.")
        return 0
    rules_deploy.deploy(kafka, ruleset, plan, now)
    print(f"Deployed rule set {plan.version} ({len(ruleset.rules)} rules) to advisering.rules; "
          "running workers switch to it within seconds.")
    return 0


def _print_plan(plan: DeployPlan, deployed: DeployedState) -> None:
    current = deployed.manifest.version if deployed.manifest else "none (workers use "\
        "ADVISERING_RULES_DIR)"
    print(f"Deployed now: {current}")
    for label, ids in (("added", plan.added), ("changed", plan.changed),
                       ("removed", plan.removed), ("unchanged", plan.unchanged)):
        if ids:
            print(f"  {label:<9} {', '.join(ids)}")


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.engine.rules import load_rules
    from advisering.kafka.connection import KafkaConnection
    from advisering.kafka.topics import load_vocabulary
    from advisering.rulebook import deploy as rules_deploy

    deployed = rules_deploy.read_deployed(KafkaConnection.from_settings(settings))
    if deployed.manifest is None:
        print("No rule set is deployed; workers use their ADVISERING_RULES_DIR.")
        return 0
    manifest = deployed.manifest
    print(f"Deployed rule set {manifest.version} at {manifest.deployed} "
          f"({len(manifest.rules)} rules):")
    for rule_id in sorted(manifest.rules):
        print(f"  {rule_id}")
    directory: Path = args.dir or settings.rules_dir
    if directory.is_dir():
        local = load_rules(directory, load_vocabulary(settings.topics_dir))
        plan = rules_deploy.plan_deploy(local, deployed, dt.datetime.now(dt.UTC))
        if plan.added or plan.changed or plan.removed:
            print(f"Compared with {directory}:")
            _print_plan(plan, deployed)
        else:
            print(f"{directory} holds the deployed rules.")
    return 0


def add_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add deploy and status to the `advisering rules` sub-commands."""
    deploy = actions.add_parser("deploy", help="validate and publish the rule set to workers")
    deploy.add_argument("dir", nargs="?", type=Path, default=None,
                        help="rules directory (default ADVISERING_RULES_DIR)")
    deploy.add_argument("--dry-run", action="store_true", help="show the plan, publish nothing")
    deploy.set_defaults(handler=_deploy)
    status = actions.add_parser("status", help="the deployed rule set and what differs locally")
    status.add_argument("dir", nargs="?", type=Path, default=None)
    status.set_defaults(handler=_status)

"""`advisering rules deploy`, `status` and `keygen`: publishing signed rule sets.

``deploy`` signs the set with ``ADVISERING_RULES_SIGNING_KEY_FILE`` and
refuses to publish without it (a dry run needs no key: it publishes nothing);
``keygen`` makes the key pair (:mod:`advisering.rulebook.signing`).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from advisering.settings import Settings

if TYPE_CHECKING:
    from advisering.rulebook.deploy import DeployedState, DeployPlan
    from advisering.rulebook.signing import Signer


def _deploy(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.engine.rules import load_rules
    from advisering.kafka.connection import KafkaConnection
    from advisering.kafka.topics import load_vocabulary
    from advisering.rulebook import deploy as rules_deploy
    from advisering.rulebook.signing import load_signer
    from advisering.yamlfiles import YamlFileError

    signer: Signer | None = None
    if not args.dry_run or settings.rules_signing_key_file is not None:
        signer = load_signer(settings.rules_signing_key_file)  # before anything is read
    directory: Path = args.dir or settings.rules_dir
    try:
        ruleset = load_rules(directory, load_vocabulary(settings.topics_dir))
    except YamlFileError as exc:
        print(f"Not deployed: {len(exc.problems)} problem(s) in {directory}:")
        for problem in exc.problems:
            print(f"  {problem}")
        return 1
    kafka = KafkaConnection.from_settings(settings)
    deployed = rules_deploy.read_deployed(kafka)
    now = rules_deploy.deploy_time(deployed, dt.datetime.now(dt.UTC).replace(microsecond=0))
    plan = rules_deploy.plan_deploy(ruleset, deployed, now)
    _print_plan(plan, deployed)
    # An unchanged set is published again when its manifest is not signed by this key
    # (e.g. deployed before signing, or with a retired key): workers would refuse it.
    resign = signer is not None and not deployed.signed_by(signer)
    if not (plan.added or plan.changed or plan.removed) and deployed.manifest is not None:
        if not resign:
            print("The deployed rule set is already this one; nothing published.")
            return 0
        print("The deployed rules are these, but not signed by this key: signing them anew.")
    if args.dry_run:
        print("Dry run: nothing published.")
        return 0
    assert signer is not None  # loaded above unless this is a dry run
    rules_deploy.deploy(kafka, ruleset, plan, now, signer)
    print(f"Deployed rule set {plan.version} ({len(ruleset.rules)} rules), signed by key "
          f"{signer.key_id}, to advisering.rules; running workers switch to it within seconds.")
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
    print(f"  {_signature_line(deployed, settings)}")
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


def _signature_line(deployed: DeployedState, settings: Settings) -> str:
    """Who signed the deployed set, and whether this machine's verify keys accept it."""
    from advisering.rulebook.deploy import RulesetRejected
    from advisering.rulebook.signing import load_verify_keys

    manifest = deployed.manifest
    assert manifest is not None
    if not manifest.signature:
        return "signature: none (workers refuse this set)"
    said = f"signed by key {manifest.key_id}"
    if settings.rules_verify_keys_file is None:
        return f"{said}; not checked here (ADVISERING_RULES_VERIFY_KEYS_FILE is not set)"
    try:
        deployed.verify(load_verify_keys(settings.rules_verify_keys_file))
    except RulesetRejected as exc:
        return f"{said}; does NOT verify: {exc.detail}"
    return f"{said}; verifies with ADVISERING_RULES_VERIFY_KEYS_FILE"


def _keygen(args: argparse.Namespace, _settings: Settings) -> int:
    from advisering.rulebook.signing import write_key_pair

    files = write_key_pair(args.out)
    print(f"Key id: {files.key_id}")
    print(f"Private key (operators only, 0600): {files.private}  "
          "-> ADVISERING_RULES_SIGNING_KEY_FILE of `rules deploy`")
    print(f"Public key: {files.public}  -> in every worker's ADVISERING_RULES_VERIFY_KEYS_FILE")
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
    keygen = actions.add_parser("keygen", help="make the Ed25519 key pair that signs rule sets")
    keygen.add_argument("--out", type=Path, required=True,
                        help="folder for rules-signing.key (0600) and rules-signing.pub; "
                             "existing key files are never overwritten")
    keygen.set_defaults(handler=_keygen)

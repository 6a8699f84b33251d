"""`advisering kafka start|stop|status` and `advisering topics apply`: the brokers and topics.

`kafka status` exits 0 when the broker (every node of the cluster) runs, 3 when
nothing runs, 4 when only some nodes of the cluster run or one is paused.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from advisering.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from advisering.kafka import acl_apply
    from advisering.kafka.acls import AclFile


def _kafka_start(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev.kafka_cluster import LocalCluster
    from advisering.dev.local_kafka import KAFKA_VERSION, LocalKafka, LocalKafkaError

    if args.brokers > 1:
        if args.secure:
            raise LocalKafkaError(
                "--secure runs one node only: start it without --brokers (the three-node "
                "cluster is plaintext, for failover tests).")
        return _cluster_start(args, settings)
    cluster = LocalCluster(settings)
    if cluster.exists() and any(status.pid is not None for status in cluster.status()):
        raise LocalKafkaError(
            f"The local {len(cluster.nodes)}-node cluster runs at {cluster.bootstrap}; "
            "stop it first (`advisering kafka stop`) or start it with --brokers 3."
        )
    result = LocalKafka(settings, secure=args.secure).start(fresh=args.fresh)
    print(result.message)
    if result.started:
        print(f"  bootstrap: {result.status.bootstrap}")
        print(f"  broker log: {result.status.log_file}")
        print(f"  Apache Kafka {KAFKA_VERSION} (KRaft), started in {result.seconds:.1f}s")
    _print_clients(result.status.clients_dir, result.status.mtls_bootstrap)
    return 0


def _print_clients(clients_dir: Path | None, mtls_bootstrap: str | None = None) -> None:
    """Where a secure broker's listeners and client env files are (never a password)."""
    if clients_dir is None:
        return
    print("  client listeners: SASL_SSL (SCRAM-SHA-512) at the bootstrap above"
          + (f"; SSL (mutual TLS, client certificate CN = user) at {mtls_bootstrap}"
             if mtls_bootstrap else ""))
    print(f"  client credentials (mode 0600): {clients_dir}")
    print(f"    SASL_SSL:   set -a; . {clients_dir / 'worker.env'}; set +a")
    print(f"    mutual TLS: set -a; . {clients_dir / 'worker.mtls.env'}; set +a"
          "  (certificate worker.pem, key worker.key)")
    print("  ACLs: `advisering topics apply` with admin.env applies topics/acls.yaml")


def _cluster_start(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev.kafka_cluster import LocalCluster
    from advisering.dev.local_kafka import KAFKA_VERSION, LocalKafka, LocalKafkaError

    single = LocalKafka(settings).status()
    if single.running:
        raise LocalKafkaError(
            f"A single-node broker runs at {single.bootstrap} (pid {single.pid}); stop it "
            "first (`advisering kafka stop`) or choose another ADVISERING_KAFKA_PORT."
        )
    cluster = LocalCluster(settings, args.brokers)
    result = cluster.start(fresh=args.fresh)
    print(result.message)
    if result.started:
        print(f"  ADVISERING_BOOTSTRAP_SERVERS={result.bootstrap}")
        for status in result.nodes:
            node = status.node
            print(f"  node {node.node_id}: broker {node.address}, controller "
                  f"{node.controller_address}, pid {status.pid}, log {node.log_file}")
        print(f"  Apache Kafka {KAFKA_VERSION} (KRaft, {len(result.nodes)} combined nodes), "
              f"started in {result.seconds:.1f}s")
    return 0


def _kafka_stop(_args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev.kafka_cluster import LocalCluster
    from advisering.dev.local_kafka import LocalKafka

    stopped = LocalKafka(settings).stop()
    cluster = LocalCluster(settings)
    nodes = cluster.stop() if cluster.exists() else 0
    if nodes:
        print(f"Kafka stopped ({nodes} node{'s' if nodes > 1 else ''} of the local cluster).")
    elif stopped:
        print("Kafka stopped.")
    else:
        print("Kafka was not running.")
    return 0


def _kafka_status(_args: argparse.Namespace, settings: Settings) -> int:
    from advisering.dev import cluster_view
    from advisering.dev.kafka_cluster import LocalCluster
    from advisering.dev.local_kafka import LocalKafka

    status = LocalKafka(settings).status()
    if status.running:
        secure = " (SASL_SSL, SCRAM-SHA-512, ACLs)" if status.clients_dir else ""
        print(f"Kafka is running at {status.bootstrap}{secure} (pid {status.pid}).")
        print(f"  broker log: {status.log_file}")
        _print_clients(status.clients_dir, status.mtls_bootstrap)
        return 0
    cluster = LocalCluster(settings)
    if cluster.exists():
        seen = cluster_view.view(cluster)
        print("\n".join(cluster_view.status_lines(cluster, seen)))
        running = sum(node.state == "running" for node in seen.nodes)
        if running == len(seen.nodes):
            return 0
        return 4 if any(node.pid is not None for node in seen.nodes) else 3
    print(f"Kafka is not running (would listen on {status.bootstrap}).")
    return 3


def _topics_apply(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.kafka import acl_apply
    from advisering.kafka import apply as topic_apply
    from advisering.kafka.acls import load_acls
    from advisering.kafka.connection import KafkaConnection
    from advisering.kafka.topics import ACLS_FILE, citizen_topic_spec, load_topic_specs

    directory = args.dir or settings.topics_dir
    replicas = args.replication_factor or settings.topic_replication_factor
    specs = [
        spec.effective(args.partitions or settings.topic_partitions, replicas)
        for spec in load_topic_specs(directory).values()
    ]
    # The worker's repartition topic always has the worker's partitions.
    specs.append(citizen_topic_spec(directory, settings).effective(None, replicas))
    declared = None if args.skip_acls else load_acls(args.acls or directory / ACLS_FILE)
    admin = topic_apply.admin_client(KafkaConnection.from_settings(settings))
    changes = topic_apply.plan(admin, specs)
    print(f"Plan for {settings.bootstrap_servers}:")
    for change in changes:
        print(f"  {change.describe()}")
    acls = _acl_plan(admin, declared, settings)
    if args.dry_run:
        print("Dry run: nothing changed.")
        return 0
    if all(change.action == "unchanged" for change in changes) and (acls is None or acls.empty):
        print("Nothing to do.")
        return 0
    topic_apply.execute(admin, specs, changes)
    if acls is not None:
        acl_apply.execute(admin, acls)
    print("Applied.")
    return 0


def _acl_plan(admin: AdminClient, declared: AclFile | None,
              settings: Settings) -> acl_apply.AclPlan | None:
    """Print the ACL plan; None when skipped (``--skip-acls``, or a broker without ACLs)."""
    from advisering.kafka import acl_apply
    from advisering.kafka.acls import acl_entries, managed_principals

    if declared is None:
        print("ACLs: skipped (--skip-acls).")
        return None
    try:
        acls = acl_apply.plan(admin, acl_entries(declared, settings),
                              managed_principals(declared))
    except acl_apply.AclsUnsupported:
        # The plaintext development broker: nothing to enforce ACLs, so none to apply.
        print("ACLs: skipped, the broker has no authorizer; "
              "acls.yaml was checked but not applied.")
        return None
    print(f"ACL plan for {len(managed_principals(declared))} principals:")
    for line in acls.lines():
        print(f"  {line}")
    return acls


def positive(value: str) -> int:
    """An argparse type: a whole number of at least one."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `kafka` and `topics` verbs."""
    kafka = verbs.add_parser("kafka", help="a local Apache Kafka (KRaft): one node or three")
    kafka_verbs = kafka.add_subparsers(dest="kafka_verb", required=True, metavar="ACTION")
    start = kafka_verbs.add_parser("start", help="start the local broker (no-op if running)")
    start.add_argument("--fresh", action="store_true", help="wipe the broker's data first")
    start.add_argument("--secure", action="store_true",
                       help="one node with TLS, SASL/SCRAM users and client certificates "
                            "per component (SASL_SSL on P, mutual TLS on P+2) and an "
                            "authorizer (ACLs from topics/acls.yaml); env files in "
                            "<state>/secure/clients/")
    start.add_argument("--brokers", type=int, choices=(1, 3), default=1,
                       help="1: one combined node (default); 3: a cluster of three combined "
                            "nodes on ports P..P+2, controllers on P+100..P+102")
    start.set_defaults(handler=_kafka_start)
    stop = kafka_verbs.add_parser("stop", help="stop the local broker, or every cluster node")
    stop.set_defaults(handler=_kafka_stop)
    status = kafka_verbs.add_parser("status", help="is the local broker (each node) running?")
    status.set_defaults(handler=_kafka_status)

    topics = verbs.add_parser("topics", help="topics as code (topics/*.yaml)")
    topics_verbs = topics.add_subparsers(dest="topics_verb", required=True, metavar="ACTION")
    apply = topics_verbs.add_parser("apply", help="create missing topics, alter changed configs, "
                                                  "make the ACLs match acls.yaml")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.add_argument("--dir", type=Path, default=None, help="topic files (default topics/)")
    apply.add_argument("--partitions", type=positive, default=None,
                       help="override every topic's partitions (development)")
    apply.add_argument("--replication-factor", type=positive, default=None,
                       help="override every topic's replication factor (one-node broker: 1)")
    apply.add_argument("--acls", type=Path, default=None,
                       help="the ACL declaration (default: acls.yaml in the topics folder)")
    apply.add_argument("--skip-acls", action="store_true",
                       help="leave ACLs alone (they are managed elsewhere, e.g. Strimzi "
                            "KafkaUsers); a broker without an authorizer is skipped anyway")
    apply.set_defaults(handler=_topics_apply)

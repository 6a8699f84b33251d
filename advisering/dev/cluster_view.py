"""Who does what in the local cluster: the active controller and the partitions each node leads.

The active controller is the leader of the KRaft metadata quorum. Kafka's
clients cannot ask for it (in KRaft, a broker names a random live broker as
"controller" in its metadata answer), so it is read from the quorum state
each node keeps on disk (``data/__cluster_metadata-0/quorum-state``, written
atomically whenever the node learns of a new leader): the leader named with
the highest epoch by a node that runs. Partition leadership comes from the
cluster's metadata (the admin client).

These tools talk to the local PLAINTEXT cluster ``kafka start --brokers 3``
started itself, so they take its bootstrap string and connect with
``KafkaConnection.plaintext``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition

from advisering.dev.cluster_config import Node
from advisering.dev.kafka_cluster import LocalCluster, NodeStatus
from advisering.kafka.apply import admin_client
from advisering.kafka.connection import KafkaConnection

QUORUM_STATE = "__cluster_metadata-0/quorum-state"


@dataclass(frozen=True)
class PartitionState:
    """One partition as the cluster's metadata describes it (leader -1: none)."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class NodeLoad:
    """What one node carries: partitions it leads, replicas it holds, replicas out of sync."""

    leads: int = 0
    replicas: int = 0
    out_of_sync: int = 0


@dataclass(frozen=True)
class ClusterView:
    """The cluster as `kafka status` shows it; ``loads`` is None when no broker answered."""

    nodes: tuple[NodeStatus, ...]
    controller: int | None
    loads: dict[int, NodeLoad] | None


def quorum_leader(node: Node) -> tuple[int, int] | None:
    """(leader id, epoch) from a node's quorum-state file, None when it names no leader."""
    try:
        state = json.loads((node.data_dir / QUORUM_STATE).read_text())
        leader, epoch = int(state["leaderId"]), int(state["leaderEpoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (leader, epoch) if leader >= 0 else None


def active_controller(claims: Iterable[tuple[int, int]]) -> int | None:
    """The leader of the highest epoch among the nodes' claims (the newest election)."""
    newest = max(claims, key=lambda claim: claim[1], default=None)
    return None if newest is None else newest[0]


def node_loads(partitions: Iterable[PartitionState]) -> dict[int, NodeLoad]:
    """Per node id: partitions led, replicas held, and held replicas not in the ISR."""
    leads: dict[int, int] = {}
    replicas: dict[int, int] = {}
    behind: dict[int, int] = {}
    for state in partitions:
        if state.leader >= 0:
            leads[state.leader] = leads.get(state.leader, 0) + 1
        for replica in state.replicas:
            replicas[replica] = replicas.get(replica, 0) + 1
            if replica not in state.isr:
                behind[replica] = behind.get(replica, 0) + 1
    return {node: NodeLoad(leads.get(node, 0), replicas.get(node, 0), behind.get(node, 0))
            for node in sorted(set(leads) | set(replicas))}


def partition_states(bootstrap: str, topic: str | None = None,
                     timeout: float = 10.0) -> list[PartitionState]:
    """Every partition of ``topic`` (or of all topics, internal ones too) from the metadata."""
    metadata: Any = admin_client(KafkaConnection.plaintext(bootstrap)).list_topics(
        topic, timeout=timeout)
    states = []
    for name, found in metadata.topics.items():
        if found.error is not None:
            continue
        for index, partition in found.partitions.items():
            states.append(PartitionState(name, int(index), int(partition.leader),
                                         tuple(partition.replicas), tuple(partition.isrs)))
    return states


def leader_of_most_partitions(bootstrap: str, topic: str) -> int:
    """The node id leading the most partitions of ``topic`` (the lowest id on a tie)."""
    loads = node_loads(partition_states(bootstrap, topic))
    leads = {node: load.leads for node, load in loads.items() if load.leads}
    if not leads:
        raise RuntimeError(f"no partition of {topic} has a leader")
    return min(leads, key=lambda node: (-leads[node], node))


def wait_until_in_sync(bootstrap: str, topics: Iterable[str], timeout: float = 60.0) -> None:
    """Wait until every partition of ``topics`` has a leader and all its replicas in the ISR."""
    names = list(topics)
    deadline = time.monotonic() + timeout
    lagging: list[str] = []
    while time.monotonic() < deadline:
        lagging = [
            f"{state.topic}-{state.partition}"
            for name in names for state in partition_states(bootstrap, name)
            if state.leader < 0 or set(state.isr) != set(state.replicas)
        ]
        if not lagging:
            return
        time.sleep(0.5)
    raise TimeoutError(f"partitions not in sync after {timeout:.0f}s: {', '.join(lagging)}")


def elect_preferred_leaders(bootstrap: str, topics: Iterable[str], timeout: float = 30.0) -> None:
    """Run a preferred leader election on every partition of ``topics`` that needs one."""
    partitions = [TopicPartition(state.topic, state.partition)
                  for name in topics for state in partition_states(bootstrap, name)
                  if state.replicas and state.leader != state.replicas[0]]
    if not partitions:
        return
    # Referenced until the answer came: it is the connection.
    admin = admin_client(KafkaConnection.plaintext(bootstrap))
    deadline = time.monotonic() + timeout
    while True:
        # No timeout keywords: confluent-kafka 2.16 fails to parse them for this call.
        future = admin.elect_leaders(ElectionType.PREFERRED, partitions)
        try:
            results = future.result(timeout=max(1.0, deadline - time.monotonic()))
            break
        except KafkaException:  # the controller not ready yet (just after a cluster restart)
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)
    failed = election_failures(results)
    if failed:
        raise RuntimeError(f"preferred leader election failed: {failed}")


def election_failures(results: dict[TopicPartition, KafkaError | None]) -> dict[str, str]:
    """The partitions whose election failed; "not needed" is success.

    The controller's own preferred-leader rebalancing may have moved a
    leader home between reading the partition states and the election.
    """
    return {f"{tp.topic}-{tp.partition}": str(error) for tp, error in results.items()
            if error is not None and error.code() != KafkaError.ELECTION_NOT_NEEDED}


def view(cluster: LocalCluster) -> ClusterView:
    """The nodes, the active controller and each node's partitions, as they are now."""
    nodes = cluster.status()
    running = [status for status in nodes if status.state == "running"]
    claims = [claim for status in running if (claim := quorum_leader(status.node)) is not None]
    loads: dict[int, NodeLoad] | None = None
    if running:
        bootstrap = ",".join(status.node.address for status in running)
        try:
            loads = node_loads(partition_states(bootstrap, timeout=5.0))
        except Exception:  # noqa: BLE001 - a status line must not fail on a slow cluster
            loads = None
    return ClusterView(nodes, active_controller(claims), loads)


def status_lines(cluster: LocalCluster, seen: ClusterView) -> list[str]:
    """`kafka status` for the cluster: one line per node with pid, ports, state and role."""
    serving = sum(status.state == "running" for status in seen.nodes)
    lines = [
        f"Kafka cluster of {len(seen.nodes)} nodes at {cluster.bootstrap}: "
        f"{serving} of {len(seen.nodes)} running.",
        f"  {'node':<5} {'pid':<8} {'broker':<7} {'controller':<11} {'state':<8} "
        f"{'role':<18} {'leads':>5} {'replicas':>8} {'out of sync':>11}",
    ]
    for status in seen.nodes:
        node = status.node
        role = "-"
        if status.state == "running":
            role = ("active controller" if seen.controller == node.node_id
                    else "follower" if seen.controller is not None else "voter, no leader")
        numbers = ("-", "-", "-")
        if seen.loads is not None and status.state == "running":
            load = seen.loads.get(node.node_id, NodeLoad())
            numbers = (str(load.leads), str(load.replicas), str(load.out_of_sync))
        lines.append(
            f"  {node.node_id:<5} {status.pid or '-':<8} {node.broker_port:<7} "
            f"{node.controller_port:<11} {status.state:<8} {role:<18} {numbers[0]:>5} "
            f"{numbers[1]:>8} {numbers[2]:>11}"
        )
    lines.append(f"  logs: {cluster.state_dir}/node-<n>/logs/server.log")
    return lines

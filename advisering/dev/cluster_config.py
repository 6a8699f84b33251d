"""The local cluster's layout and configuration: ports, folders, ``server.properties``.

Ports, from ``ADVISERING_KAFKA_PORT`` = P: node n (1, 2, 3) serves clients on
P+n-1 and its controller quorum on P+100+n-1 (P=9092: 9092-9094 and
9192-9194). Folders, under the state directory (``<cache>/broker-<P>`` unless
``ADVISERING_KAFKA_STATE_DIR``): ``node-<n>/`` with ``server.properties``,
``data/``, ``logs/server.log``, ``logs/stdout.log`` and ``kafka.pid``. Every
node is a broker and a controller (``process.roles=broker,controller``), and
internal topics are replicated as in production: replication factor 3,
``min.insync.replicas`` 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from advisering.dev.kafka_jvm import LocalKafkaError

CLUSTER_NODES = 3
CONTROLLER_PORT_OFFSET = 100


@dataclass(frozen=True)
class Node:
    """One node of the local cluster: its id, its two ports and its folder."""

    node_id: int
    broker_port: int
    controller_port: int
    home: Path

    @property
    def address(self) -> str:
        """Where clients reach this node's broker."""
        return f"127.0.0.1:{self.broker_port}"

    @property
    def controller_address(self) -> str:
        """Where the other controllers reach this node's controller."""
        return f"127.0.0.1:{self.controller_port}"

    @property
    def data_dir(self) -> Path:
        """The node's log.dirs (partitions and the KRaft metadata log)."""
        return self.home / "data"

    @property
    def config_file(self) -> Path:
        """The node's server.properties; its path also identifies the node's process."""
        return self.home / "server.properties"

    @property
    def log4j_file(self) -> Path:
        """The node's log4j2 configuration."""
        return self.home / "log4j2.properties"

    @property
    def log_file(self) -> Path:
        """The node's own log (log4j)."""
        return self.home / "logs" / "server.log"

    @property
    def stdout_file(self) -> Path:
        """Whatever the JVM writes to stdout and stderr."""
        return self.home / "logs" / "stdout.log"

    @property
    def pid_file(self) -> Path:
        """The pid of the node's JVM while it runs."""
        return self.home / "kafka.pid"


def plan_nodes(base_port: int, state_dir: Path, count: int = CLUSTER_NODES) -> tuple[Node, ...]:
    """The nodes of a cluster on ``base_port``: ids 1..count, ports by the scheme above."""
    highest = base_port + CONTROLLER_PORT_OFFSET + count - 1
    if highest > 65535:
        raise LocalKafkaError(
            f"A {count}-node cluster on port {base_port} needs ports up to {highest}; "
            "choose a lower ADVISERING_KAFKA_PORT."
        )
    return tuple(
        Node(node_id=index + 1, broker_port=base_port + index,
             controller_port=base_port + CONTROLLER_PORT_OFFSET + index,
             home=state_dir / f"node-{index + 1}")
        for index in range(count)
    )


def bootstrap_of(nodes: tuple[Node, ...]) -> str:
    """ADVISERING_BOOTSTRAP_SERVERS for the cluster: every node's broker address."""
    return ",".join(node.address for node in nodes)


def initial_controllers(nodes: tuple[Node, ...], directory_ids: dict[int, str]) -> str:
    """The storage tool's ``--initial-controllers``: ``id@host:port:directory-id`` per voter."""
    return ",".join(
        f"{node.node_id}@{node.controller_address}:{directory_ids[node.node_id]}"
        for node in nodes
    )


def node_properties(node: Node, nodes: tuple[Node, ...]) -> str:
    """server.properties of one node: combined roles, three voters, production replication."""
    replicas = min(3, len(nodes))
    min_isr = min(2, replicas)
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node.node_id}",
        "controller.quorum.bootstrap.servers="
        + ",".join(other.controller_address for other in nodes),
        f"listeners=PLAINTEXT://{node.address},CONTROLLER://{node.controller_address}",
        f"advertised.listeners=PLAINTEXT://{node.address},CONTROLLER://{node.controller_address}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={node.data_dir}",
        "num.partitions=1",
        f"default.replication.factor={replicas}",
        # Also the consumer offsets topic's min ISR: it takes the broker default.
        f"min.insync.replicas={min_isr}",
        f"offsets.topic.replication.factor={replicas}",
        "offsets.topic.num.partitions=10",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        "unclean.leader.election.enable=false",
        "group.initial.rebalance.delay.ms=0",
        # Faust creates its own internal topics; ours come from `topics apply`.
        "auto.create.topics.enable=false",
        "log.cleaner.dedupe.buffer.size=33554432",
        "log.segment.bytes=67108864",
        "",
    ])

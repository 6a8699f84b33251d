"""A local Apache Kafka cluster of three combined KRaft nodes, for replication and fault tests.

``advisering kafka start --brokers 3``: this module starts, stops and reports
on the nodes' JVMs; their ports, folders and ``server.properties`` are
:mod:`advisering.dev.cluster_config`. The three storages are formatted once,
in parallel, for one cluster id and a dynamic quorum of three voters
(``--initial-controllers``, KIP-853), so the cluster survives the loss of any
one node. ``cluster.json`` in the state directory marks a formatted cluster.
The jars are the single broker's cache. The nodes listen in PLAINTEXT, so
the start-up check connects with ``KafkaConnection.plaintext``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass

from advisering.dev.cluster_config import (
    CLUSTER_NODES,
    Node,
    bootstrap_of,
    initial_controllers,
    node_properties,
    plan_nodes,
)
from advisering.dev.kafka_jvm import (
    KAFKA_VERSION,
    LocalKafkaError,
    alive,
    ensure_libs,
    find_java,
    java_command,
    libs_dir_of,
    log4j_properties,
    new_cluster_id,
    port_in_use,
    process_state,
    read_live_pid,
    tail_lines,
    terminate,
)
from advisering.kafka.clients import live_broker_ids
from advisering.kafka.connection import KafkaConnection
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)

MARKER_FILE = "cluster.json"
#: The storage tool only writes a few files; it needs no broker-sized heap.
TOOL_HEAP = "256m"
#: Seconds a stopping node may still run once the quorum lost its majority (see terminate).
QUORUMLESS_GRACE = 5.0


@dataclass(frozen=True)
class NodeStatus:
    """A node as it is now: ``running``, ``paused`` (SIGSTOP) or ``stopped``."""

    node: Node
    pid: int | None
    state: str


@dataclass(frozen=True)
class ClusterStart:
    """What `kafka start --brokers 3` did: the message, the nodes and how long it took."""

    started: bool
    nodes: tuple[NodeStatus, ...]
    bootstrap: str
    seconds: float
    message: str


class LocalCluster:
    """Starts, stops, reports on and signals the nodes of the local cluster."""

    def __init__(self, settings: Settings, count: int = CLUSTER_NODES) -> None:
        self.settings = settings
        self.state_dir = settings.broker_state_dir
        self.libs_dir = libs_dir_of(settings.kafka_cache_dir)
        self.nodes = plan_nodes(settings.kafka_port, self.state_dir, count)
        self.bootstrap = bootstrap_of(self.nodes)
        self.marker = self.state_dir / MARKER_FILE

    def exists(self) -> bool:
        """True once a cluster was formatted in this state directory."""
        return self.marker.exists()

    def node(self, node_id: int) -> Node:
        """The node with this id (1, 2, 3), or a clear error."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise LocalKafkaError(f"The local cluster has nodes 1 to {len(self.nodes)}, "
                              f"not {node_id}.")

    def node_status(self, node: Node) -> NodeStatus:
        """One node as it is now (running only if its recorded pid is our Kafka)."""
        pid = read_live_pid(node.pid_file, node.config_file)
        state = process_state(pid) if pid is not None else None
        if pid is None or state is None:
            return NodeStatus(node, None, "stopped")
        return NodeStatus(node, pid, "paused" if state == "T" else "running")

    def status(self) -> tuple[NodeStatus, ...]:
        """Every node as it is now."""
        return tuple(self.node_status(node) for node in self.nodes)

    def uses_cluster(self) -> bool:
        """True when ADVISERING_BOOTSTRAP_SERVERS is empty or names only this cluster's nodes."""
        local = {f"{host}:{node.broker_port}" for node in self.nodes
                 for host in ("127.0.0.1", "localhost")}
        servers = {s.strip() for s in self.settings.bootstrap_servers.split(",") if s.strip()}
        return servers <= local

    def start(self, *, fresh: bool = False) -> ClusterStart:
        """Start every node that does not run; `fresh` restarts all of them on empty data."""
        began = time.monotonic()
        if not self.uses_cluster():
            return self._result(False, began, (
                f"ADVISERING_BOOTSTRAP_SERVERS points at {self.settings.bootstrap_servers}; "
                "not starting a local cluster."))
        current = self.status()
        if fresh and any(status.pid is not None for status in current):
            self.stop()
        elif all(status.pid is not None for status in current):
            return self._result(False, began,
                                f"The Kafka cluster is already running at {self.bootstrap}.")
        todo = [status.node for status in self.status() if status.pid is None]
        self._check_ports(todo)
        java = find_java()
        ensure_libs(self.libs_dir)
        if fresh:
            self._wipe()
        self._write_configs()
        self._format_if_new(java)
        pids = {node.node_id: self.launch(node, java) for node in todo}
        self.wait_until_ready(pids)
        log.info("kafka_cluster_started", bootstrap=self.bootstrap,
                 nodes=sorted(pids), seconds=round(time.monotonic() - began, 2))
        return self._result(True, began, f"Kafka {KAFKA_VERSION}: a {len(self.nodes)}-node "
                                          f"cluster is running at {self.bootstrap}.")

    def stop(self, timeout: float = 60.0) -> int:
        """Shut every running node down at once (SIGTERM); returns how many were running."""
        running = [status.node.node_id for status in self.status() if status.pid is not None]
        self.terminate(running, timeout)
        if running:
            log.info("kafka_cluster_stopped", nodes=running)
        return len(running)

    def terminate(self, node_ids: list[int], timeout: float = 60.0) -> None:
        """SIGTERM these nodes and wait for them; SIGKILL those that cannot finish.

        A broker's controlled shutdown must be approved by the controller
        quorum. Once fewer than a majority of the nodes run, a node still
        shutting down waits for that approval in vain (Kafka gives it minutes),
        so it is killed :data:`QUORUMLESS_GRACE` seconds later; the acknowledged
        data is in its log files, and its next start recovers the logs.
        """
        nodes = [self.node(node_id) for node_id in node_ids]
        pids = [pid for node in nodes if (pid := self.node_status(node).pid) is not None]
        majority = len(self.nodes) // 2 + 1
        lost_at: list[float] = []

        def quorum_lost(_left: list[int]) -> bool:
            serving = sum(status.state == "running" for status in self.status())
            if serving >= majority:
                return False
            lost_at.append(time.monotonic())
            return lost_at[-1] - lost_at[0] > QUORUMLESS_GRACE

        terminate(pids, timeout, quorum_lost)
        for node in nodes:
            node.pid_file.unlink(missing_ok=True)

    def launch(self, node: Node, java: str | None = None) -> int:
        """Start one formatted node's JVM (without waiting for it); returns its pid."""
        command = java_command(java or find_java(), self.settings.kafka_cluster_heap,
                               node.log4j_file, self.libs_dir, "kafka.Kafka",
                               str(node.config_file))
        with node.stdout_file.open("ab") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=node.home,
            )
        node.pid_file.write_text(str(process.pid))
        log.info("kafka_node_launched", node=node.node_id, pid=process.pid)
        return process.pid

    def wait_until_ready(self, pids: dict[int, int], timeout: float | None = None) -> None:
        """Wait until the cluster lists every node as a live broker; fail if a JVM exits."""
        limit = timeout or self.settings.kafka_start_timeout
        deadline = time.monotonic() + limit
        wanted = {node.node_id for node in self.nodes}
        while time.monotonic() < deadline:
            for node_id, pid in pids.items():
                if not alive(pid):
                    node = self.node(node_id)
                    node.pid_file.unlink(missing_ok=True)
                    raise LocalKafkaError(
                        f"Kafka node {node_id} exited during start-up. Its log "
                        f"({node.log_file}) ends with:\n"
                        f"{tail_lines((node.log_file, node.stdout_file))}"
                    )
            if wanted <= live_broker_ids(KafkaConnection.plaintext(self.bootstrap), timeout=2.0):
                return
            time.sleep(0.3)
        raise LocalKafkaError(
            f"The Kafka cluster did not list all {len(wanted)} brokers within {limit:.0f}s. "
            f"The nodes' logs are in {self.state_dir}/node-*/logs/."
        )

    # -- steps ----------------------------------------------------------------

    def _result(self, started: bool, began: float, message: str) -> ClusterStart:
        return ClusterStart(started=started, nodes=self.status(), bootstrap=self.bootstrap,
                            seconds=time.monotonic() - began, message=message)

    def _check_ports(self, nodes: list[Node]) -> None:
        busy = [port for node in nodes for port in (node.broker_port, node.controller_port)
                if port_in_use(port)]
        if busy:
            raise LocalKafkaError(
                f"Port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in use by another "
                "process (a single-node broker? `advisering kafka stop`). Stop it, or choose "
                "another port with ADVISERING_KAFKA_PORT."
            )

    def _wipe(self) -> None:
        for node in self.nodes:
            if node.data_dir.exists():
                shutil.rmtree(node.data_dir)
        self.marker.unlink(missing_ok=True)
        log.info("kafka_data_wiped", data_dir=str(self.state_dir))

    def _write_configs(self) -> None:
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            node.log_file.parent.mkdir(parents=True, exist_ok=True)
            node.config_file.write_text(node_properties(node, self.nodes))
            node.log4j_file.write_text(log4j_properties(node.log_file))

    def _format_if_new(self, java: str) -> None:
        """Format every node's storage for one new cluster, or none; refuse a mixture."""
        formatted = [node for node in self.nodes if (node.data_dir / "meta.properties").exists()]
        if len(formatted) == len(self.nodes):
            return
        if formatted:
            raise LocalKafkaError(
                f"Only node(s) {', '.join(str(n.node_id) for n in formatted)} of the local "
                f"cluster in {self.state_dir} have data; start it with --fresh."
            )
        cluster_id = new_cluster_id()
        directory_ids = {node.node_id: new_cluster_id() for node in self.nodes}
        voters = initial_controllers(self.nodes, directory_ids)
        tools = [
            subprocess.Popen(
                java_command(java, TOOL_HEAP, node.log4j_file, self.libs_dir,
                             "kafka.tools.StorageTool", "format", "-t", cluster_id,
                             "-c", str(node.config_file), "--initial-controllers", voters),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            for node in self.nodes
        ]
        for node, tool in zip(self.nodes, tools, strict=True):
            output, _ = tool.communicate()
            if tool.returncode != 0:
                raise LocalKafkaError(
                    f"Formatting node {node.node_id}'s storage in {node.data_dir} failed "
                    f"(exit {tool.returncode}); try --fresh.\n{output}"
                )
        self.marker.write_text(json.dumps({"cluster_id": cluster_id, "nodes": len(self.nodes),
                                           "kafka": KAFKA_VERSION}) + "\n")
        log.info("kafka_storage_formatted", data_dir=str(self.state_dir), nodes=len(self.nodes))

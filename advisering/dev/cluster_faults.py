"""Faults for tests and benchmarks: kill, stop, pause, resume or restart one node of the cluster.

Nodes are named by their id (1, 2, 3; node n serves on ADVISERING_KAFKA_PORT+n-1),
as `advisering kafka status` lists them. The signals are the ones a real
cluster meets: SIGKILL (a crash or the OOM killer), SIGTERM (a stop for
patching; Kafka's controlled shutdown moves leadership first), SIGSTOP and
SIGCONT (a pod or VM frozen by its scheduler, a long GC pause).

    faults = ClusterFaults(LocalCluster(settings))
    victim = faults.leader_of_most_partitions("advisering.case-events")
    faults.kill(victim)
    faults.restart(victim)            # waits until the cluster lists it again
    faults.wait_until_in_sync(["advisering.case-events"])
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

from advisering.dev import cluster_view
from advisering.dev.kafka_cluster import LocalCluster
from advisering.dev.kafka_jvm import LocalKafkaError, alive
from advisering.log import get_logger

log = get_logger(__name__)


class ClusterFaults:
    """Injects faults into single nodes of a local cluster started by `kafka start --brokers 3`."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def pid(self, node_id: int) -> int:
        """The pid of a node's JVM (running or paused), or a clear error when it does not run."""
        status = self.cluster.node_status(self.cluster.node(node_id))
        if status.pid is None:
            raise LocalKafkaError(f"Kafka node {node_id} is not running.")
        return status.pid

    def kill(self, node_id: int) -> int:
        """SIGKILL the node (no shutdown at all) and wait until it is gone; returns its pid."""
        pid = self.pid(node_id)
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
        self.cluster.node(node_id).pid_file.unlink(missing_ok=True)
        log.info("kafka_node_killed", node=node_id, pid=pid)
        return pid

    def stop(self, node_id: int, timeout: float = 60.0) -> int:
        """SIGTERM the node (controlled shutdown) and wait until it exited; returns its pid."""
        pid = self.pid(node_id)
        self.cluster.terminate([node_id], timeout)
        log.info("kafka_node_stopped", node=node_id, pid=pid)
        return pid

    def pause(self, node_id: int) -> int:
        """SIGSTOP the node: it keeps its sockets but answers nothing until resumed."""
        pid = self.pid(node_id)
        os.kill(pid, signal.SIGSTOP)
        log.info("kafka_node_paused", node=node_id, pid=pid)
        return pid

    def resume(self, node_id: int) -> int:
        """SIGCONT a paused node."""
        pid = self.pid(node_id)
        os.kill(pid, signal.SIGCONT)
        log.info("kafka_node_resumed", node=node_id, pid=pid)
        return pid

    def restart(self, node_id: int, timeout: float | None = None) -> int:
        """Start the node again (stopping it first if it runs) and wait until it serves.

        Returns when the cluster lists every node as a live broker again; the
        node's replicas may still be catching up (see :meth:`wait_until_in_sync`).
        """
        node = self.cluster.node(node_id)
        if self.cluster.node_status(node).pid is not None:
            self.stop(node_id)
        pid = self.cluster.launch(node)
        self.cluster.wait_until_ready({node_id: pid}, timeout)
        log.info("kafka_node_restarted", node=node_id, pid=pid)
        return pid

    def leader_of_most_partitions(self, topic: str) -> int:
        """The id of the node leading the most partitions of ``topic`` (lowest id on a tie)."""
        return cluster_view.leader_of_most_partitions(self.cluster.bootstrap, topic)

    def leaders(self, topic: str) -> dict[int, int]:
        """The leader of each partition of ``topic`` (-1: none), by partition."""
        return {state.partition: state.leader
                for state in cluster_view.partition_states(self.cluster.bootstrap, topic)}

    def elect_preferred_leaders(self, topics: Iterable[str]) -> None:
        """Give each partition of ``topics`` back to its preferred (first) replica now.

        A restarted node leads nothing until Kafka's own rebalance
        (``leader.imbalance.check.interval.seconds``, 5 minutes); a test that
        wants the old balance back asks for it. Partitions already led by
        their preferred replica are left as they are.
        """
        cluster_view.elect_preferred_leaders(self.cluster.bootstrap, topics)

    def wait_until_in_sync(self, topics: Iterable[str], timeout: float = 60.0) -> None:
        """Wait until every replica of ``topics`` is back in its partition's ISR."""
        cluster_view.wait_until_in_sync(self.cluster.bootstrap, topics, timeout)

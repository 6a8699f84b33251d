"""The local three-node cluster's layout, configuration, status table and stop, without Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, TopicPartition
from pydantic import ValidationError

from advisering.dev import cluster_view
from advisering.dev.cluster_config import (
    bootstrap_of,
    initial_controllers,
    node_properties,
    plan_nodes,
)
from advisering.dev.cluster_view import ClusterView, NodeLoad, PartitionState
from advisering.dev.kafka_cluster import LocalCluster, NodeStatus
from advisering.dev.kafka_jvm import LocalKafkaError, alive, terminate
from advisering.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ADVISERING_"):
            monkeypatch.delenv(name)


def properties(text: str) -> dict[str, str]:
    """server.properties as a dict (the format has one key=value per line)."""
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def cluster_at(port: int, state: Path, bootstrap: str = "") -> LocalCluster:
    return LocalCluster(Settings(kafka_port=port, kafka_state_dir=state,
                                 bootstrap_servers=bootstrap))


def test_ports_and_folders_follow_the_documented_scheme(tmp_path: Path) -> None:
    """Node n serves clients on P+n-1 and its quorum on P+100+n-1, in state/node-n."""
    nodes = plan_nodes(23092, tmp_path)
    assert [(n.node_id, n.broker_port, n.controller_port) for n in nodes] == [
        (1, 23092, 23192), (2, 23093, 23193), (3, 23094, 23194)]
    assert [n.home for n in nodes] == [tmp_path / f"node-{i}" for i in (1, 2, 3)]
    assert nodes[1].log_file == tmp_path / "node-2" / "logs" / "server.log"
    assert bootstrap_of(nodes) == "127.0.0.1:23092,127.0.0.1:23093,127.0.0.1:23094"


def test_a_base_port_too_high_for_the_controllers_is_refused(tmp_path: Path) -> None:
    """A base port whose controller ports would pass 65535 is a clear error."""
    with pytest.raises(LocalKafkaError, match="lower ADVISERING_KAFKA_PORT"):
        plan_nodes(65500, tmp_path)


def test_each_node_is_a_combined_voter_with_production_replication(tmp_path: Path) -> None:
    """Every node: broker and controller, all three voters known, RF 3, min ISR 2, own dirs."""
    nodes = plan_nodes(23092, tmp_path)
    configs = [properties(node_properties(node, nodes)) for node in nodes]
    for node, config in zip(nodes, configs, strict=True):
        assert config["process.roles"] == "broker,controller"
        assert config["node.id"] == str(node.node_id)
        assert config["controller.quorum.bootstrap.servers"] == (
            "127.0.0.1:23192,127.0.0.1:23193,127.0.0.1:23194")
        assert "controller.quorum.voters" not in config  # a dynamic quorum (KIP-853)
        assert config["listeners"] == (f"PLAINTEXT://127.0.0.1:{node.broker_port},"
                                       f"CONTROLLER://127.0.0.1:{node.controller_port}")
        assert config["log.dirs"] == str(node.data_dir)
        for key in ("default.replication.factor", "offsets.topic.replication.factor",
                    "transaction.state.log.replication.factor",
                    "share.coordinator.state.topic.replication.factor"):
            assert config[key] == "3", key
        for key in ("min.insync.replicas", "transaction.state.log.min.isr",
                    "share.coordinator.state.topic.min.isr"):
            assert config[key] == "2", key
        assert config["unclean.leader.election.enable"] == "false"
    assert len({config["log.dirs"] for config in configs}) == 3


def test_initial_controllers_name_every_voter_with_its_directory(tmp_path: Path) -> None:
    """--initial-controllers lists id@host:controller-port:directory-id for each node."""
    nodes = plan_nodes(9092, tmp_path)
    assert initial_controllers(nodes, {1: "AAA", 2: "BBB", 3: "CCC"}) == (
        "1@127.0.0.1:9192:AAA,2@127.0.0.1:9193:BBB,3@127.0.0.1:9194:CCC")


def test_only_this_clusters_addresses_count_as_local(tmp_path: Path) -> None:
    """The default, the printed bootstrap and localhost are local; another cluster is not."""
    assert cluster_at(23092, tmp_path).uses_cluster()
    printed = "127.0.0.1:23092,127.0.0.1:23093,127.0.0.1:23094"
    assert cluster_at(23092, tmp_path, printed).uses_cluster()
    assert cluster_at(23092, tmp_path, "localhost:23094").uses_cluster()
    assert not cluster_at(23092, tmp_path, "127.0.0.1:23092,kafka-0.kommune:9092").uses_cluster()
    assert not cluster_at(23092, tmp_path, "127.0.0.1:23095").uses_cluster()


def test_an_unknown_node_is_a_clear_error(tmp_path: Path) -> None:
    """Asking for node 4 of three says which nodes there are."""
    with pytest.raises(LocalKafkaError, match="nodes 1 to 3, not 4"):
        cluster_at(23092, tmp_path).node(4)


def test_a_partly_formatted_cluster_asks_for_fresh(tmp_path: Path) -> None:
    """When only some nodes have data the start refuses and says --fresh."""
    cluster = cluster_at(23092, tmp_path)
    cluster.nodes[0].data_dir.mkdir(parents=True)
    (cluster.nodes[0].data_dir / "meta.properties").write_text("node.id=1\n")
    with pytest.raises(LocalKafkaError, match=r"node\(s\) 1 .* --fresh"):
        cluster._format_if_new("java")  # noqa: SLF001 - the check before any JVM runs


def test_nothing_started_is_stopped_status(tmp_path: Path) -> None:
    """Without pid files every node is stopped, and stop reports none."""
    cluster = cluster_at(23092, tmp_path)
    assert [status.state for status in cluster.status()] == ["stopped"] * 3
    assert cluster.stop() == 0


def test_the_cluster_heap_is_a_java_size() -> None:
    """Each node's heap defaults to 512m; a value Java cannot read is refused."""
    assert Settings().kafka_cluster_heap == "512m"
    with pytest.raises(ValidationError):
        Settings(kafka_cluster_heap="512m -XX:+Evil")


def test_active_controller_is_the_newest_elections_leader(tmp_path: Path) -> None:
    """Of the nodes' quorum states the highest epoch's leader is the active controller."""
    assert cluster_view.active_controller([(1, 3), (2, 5), (2, 5)]) == 2
    assert cluster_view.active_controller([]) is None
    node = plan_nodes(23092, tmp_path)[0]
    state = node.data_dir / cluster_view.QUORUM_STATE
    state.parent.mkdir(parents=True)
    state.write_text('{"leaderId":3,"leaderEpoch":7,"votedId":-1,"data_version":1}')
    assert cluster_view.quorum_leader(node) == (3, 7)
    state.write_text('{"leaderId":-1,"leaderEpoch":8,"votedId":2,"data_version":1}')
    assert cluster_view.quorum_leader(node) is None
    state.write_text("{not json")
    assert cluster_view.quorum_leader(node) is None


def test_node_loads_count_leaders_replicas_and_lagging_replicas() -> None:
    """Leaders, replicas held and replicas outside the ISR are counted per node."""
    loads = cluster_view.node_loads([
        PartitionState("t", 0, 1, (1, 2, 3), (1, 2, 3)),
        PartitionState("t", 1, 2, (2, 3, 1), (2, 3)),
        PartitionState("t", 2, -1, (3, 1, 2), ()),
    ])
    assert loads == {1: NodeLoad(1, 3, 2), 2: NodeLoad(1, 3, 1), 3: NodeLoad(0, 3, 1)}


def test_status_lines_show_every_node_and_one_active_controller(tmp_path: Path) -> None:
    """The table has a row per node: pid, both ports, state, role and the partitions led."""
    cluster = cluster_at(23092, tmp_path)
    nodes = cluster.nodes
    seen = ClusterView(
        nodes=(NodeStatus(nodes[0], 101, "running"), NodeStatus(nodes[1], None, "stopped"),
               NodeStatus(nodes[2], 103, "running")),
        controller=3, loads={1: NodeLoad(4, 26, 1), 3: NodeLoad(22, 26, 0)})
    lines = cluster_view.status_lines(cluster, seen)
    assert lines[0].endswith("2 of 3 running.")
    assert lines[2].split() == ["1", "101", "23092", "23192", "running", "follower",
                                "4", "26", "1"]
    assert lines[3].split() == ["2", "-", "23093", "23193", "stopped", "-", "-", "-", "-"]
    assert lines[4].split() == ["3", "103", "23094", "23194", "running", "active",
                                "controller", "22", "26", "0"]


def test_terminate_gives_up_waiting_when_told() -> None:
    """A process that ignores SIGTERM is killed once give_up says waiting is pointless."""
    stubborn = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
    asked: list[list[int]] = []

    def give_up(left: list[int]) -> bool:
        asked.append(left)
        return True

    terminate([stubborn.pid], timeout=250, give_up=give_up)
    assert asked == [[stubborn.pid]]
    assert stubborn.wait(timeout=10) == -signal.SIGKILL
    assert not alive(stubborn.pid)


def test_an_election_not_needed_is_no_failure() -> None:
    """A leader already home (the controller moved it first) is success; other errors fail."""
    home, failed, fine = (TopicPartition("t", n) for n in range(3))
    results = {home: KafkaError(KafkaError.ELECTION_NOT_NEEDED),
               failed: KafkaError(KafkaError.PREFERRED_LEADER_NOT_AVAILABLE), fine: None}
    assert list(cluster_view.election_failures(results)) == ["t-1"]

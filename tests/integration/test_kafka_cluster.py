"""`advisering kafka start --brokers 3`: a three-node cluster, and its leader killed under load."""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from advisering.dev.cluster_faults import ClusterFaults
from advisering.dev.kafka_cluster import LocalCluster
from advisering.dev.kafka_jvm import alive
from advisering.dev.scenario import synthetic_cpr
from advisering.edge.client import Publisher, PublishError
from advisering.kafka.apply import admin_client
from advisering.kafka.topics import CASE_EVENTS, TOPIC_NAMES
from advisering.settings import Settings
from advisering.testing import kafka_at, read_topic
from tests.integration.bus import ROOT, run_cli, scratch_broker_env

# Brokers on PORT..PORT+2, controllers on PORT+100..PORT+102: clear of CI's 19092/19192/19292.
CLUSTER_PORT = int(os.environ.get("ADVISERING_TEST_CLUSTER_PORT", "19492"))
BOOTSTRAP = ",".join(f"127.0.0.1:{CLUSTER_PORT + index}" for index in range(3))
WAIT = 90.0  # seconds any one step may take on a busy two-core machine before the test fails


@dataclass
class Cluster:
    """The running test cluster: its CLI environment, settings and fault tooling."""

    env: dict[str, str]
    settings: Settings
    faults: ClusterFaults
    start_output: str


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """A fresh three-node cluster on the test ports, stopped when the module is done."""
    state = tmp_path_factory.mktemp("cluster")
    env = scratch_broker_env(CLUSTER_PORT, state)
    request.addfinalizer(lambda: run_cli(env, "kafka", "stop"))
    started = run_cli(env, "kafka", "start", "--brokers", "3", "--fresh", timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    settings = Settings(bootstrap_servers=BOOTSTRAP, kafka_port=CLUSTER_PORT,
                        kafka_state_dir=state, pseudonym_key=secrets.token_hex(32),
                        topics_dir=ROOT / "topics")
    return Cluster(env, settings, ClusterFaults(LocalCluster(settings)), started.stdout)


def node_rows(status_output: str) -> list[list[str]]:
    """The node lines of `kafka status` (after the title and the column names), split."""
    return [line.split() for line in status_output.splitlines()[2:5]]


def test_start_prints_the_bootstrap_and_status_lists_every_node(cluster: Cluster) -> None:
    """start prints all three addresses; status shows three running nodes, one active controller."""
    assert f"ADVISERING_BOOTSTRAP_SERVERS={BOOTSTRAP}" in cluster.start_output
    again = run_cli(cluster.env, "kafka", "start", "--brokers", "3")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    single = run_cli(cluster.env, "kafka", "start")
    assert single.returncode == 2
    assert "--brokers 3" in single.stderr

    status = run_cli(cluster.env, "kafka", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = node_rows(status.stdout)
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [row[2:4] for row in rows] == [[str(CLUSTER_PORT + i), str(CLUSTER_PORT + 100 + i)]
                                         for i in range(3)]
    assert all(row[1].isdigit() and row[4] == "running" for row in rows)
    assert status.stdout.count("active controller") == 1


def test_topics_apply_uses_the_production_replication(cluster: Cluster) -> None:
    """topics apply without overrides creates every topic with replication 3 and min ISR 2."""
    env = dict(cluster.env, ADVISERING_BOOTSTRAP_SERVERS=BOOTSTRAP,
               ADVISERING_TOPICS_DIR=str(ROOT / "topics"))
    applied = run_cli(env, "topics", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    admin = admin_client(kafka_at(BOOTSTRAP))
    metadata = admin.list_topics(timeout=30)
    names = [*TOPIC_NAMES, "advisering-worker-citizen-events"]
    for name in names:
        assert {len(p.replicas) for p in metadata.topics[name].partitions.values()} == {3}, name
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result()["min.insync.replicas"].value == "2", resource.name


def load_event(number: int) -> dict[str, Any]:
    """A valid case event with a new id; 5,000 citizens spread it over every partition."""
    case_id = f"FAULT-{number:07d}"
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "momentum",
        "type": "case.opened", "time": "2026-11-30T08:00:00+01:00", "subject": case_id,
        "datacontenttype": "application/json",
        "data": {
            "case": {"id": case_id, "kle": "32.24.06", "status": "opstaaet",
                     "department": "jobcenter", "unit": "jobcenter-nord",
                     "sensitivity": "fortrolige"},
            "parties": [{"cpr": synthetic_cpr(number % 5000), "role": "primaer"}],
        },
    }


@dataclass
class Load:
    """Publishes batches of new events with the SDK until stopped; remembers what Kafka acked."""

    settings: Settings
    acked: list[str] = field(default_factory=list)
    unconfirmed: int = 0
    ack_times: list[float] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="cluster-load", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        number = 0
        with Publisher(self.settings, delivery_timeout=45.0) as publisher:
            while not self.done.is_set():
                batch = [load_event(number + index) for index in range(10)]
                number += len(batch)
                try:
                    results = publisher.publish(batch)
                except PublishError:
                    self.unconfirmed += len(batch)
                    continue
                self.acked.extend(r.event_id for r in results if r.ok and r.event_id)
                self.unconfirmed += sum(not r.ok for r in results)
                self.ack_times.append(time.monotonic())
                time.sleep(0.05)

    def wait_for(self, count: int, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert self.thread is not None and self.thread.is_alive(), "the load stopped"
            assert time.monotonic() < deadline, f"{len(self.acked)} of {count} events acked"
            time.sleep(0.1)

    def stop(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(timeout=120)

    def longest_gap(self, since: float) -> float:
        times = [since, *(t for t in self.ack_times if t >= since)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def wait_until(what: str, check: Any, timeout: float = WAIT) -> float:
    """Poll ``check`` until it is true; the seconds it took (printed, never asserted)."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.2)
    return time.monotonic() - began


def test_killing_the_busiest_leader_under_load_loses_no_acked_event(cluster: Cluster) -> None:
    """SIGKILL the node leading most case-event partitions under load: no acked event is lost."""
    faults = cluster.faults
    load = Load(cluster.settings)
    load.start()
    try:
        load.wait_for(300)
        victim = faults.leader_of_most_partitions(CASE_EVENTS)
        led = [p for p, leader in faults.leaders(CASE_EVENTS).items() if leader == victim]
        acked_at_kill, killed_at = len(load.acked), time.monotonic()
        faults.kill(victim)
        moved = wait_until("leaders moved off the killed node", lambda: all(
            leader not in (victim, -1) for leader in faults.leaders(CASE_EVENTS).values()))
        status = run_cli(cluster.env, "kafka", "status")
        assert status.returncode == 4, status.stdout
        assert {row[0]: row[4] for row in node_rows(status.stdout)} == {
            str(node): "stopped" if node == victim else "running" for node in (1, 2, 3)}
        load.wait_for(acked_at_kill + 300)
        faults.restart(victim)
        faults.wait_until_in_sync([CASE_EVENTS], timeout=WAIT)
        faults.elect_preferred_leaders([CASE_EVENTS])
        wait_until("the restarted node leads again",
                   lambda: victim in faults.leaders(CASE_EVENTS).values())
        load.wait_for(len(load.acked) + 300)
    finally:
        load.stop()
    on_topic = Counter(orjson.loads(record.value or b"")["id"]
                       for record in read_topic(kafka_at(BOOTSTRAP), CASE_EVENTS, timeout=WAIT)
                       if record.value)
    missing = set(load.acked) - set(on_topic)
    doubled = [ident for ident in load.acked if on_topic[ident] > 1]
    print(f"\nkilled node {victim} (led partitions {led}); leaders moved in {moved:.1f}s; "
          f"longest wait for an ack after the kill {load.longest_gap(killed_at):.1f}s")
    print(f"events acked {len(load.acked)}, unconfirmed {load.unconfirmed}, "
          f"on the topic {sum(on_topic.values())}, acked but missing {len(missing)}, "
          f"acked and doubled {len(doubled)}")
    assert not missing
    assert not doubled
    assert len(load.acked) > acked_at_kill + 600


def test_stop_stops_every_node(cluster: Cluster) -> None:
    """stop ends all three JVMs; status then says nothing runs (exit 3)."""
    pids = [status.pid for status in cluster.faults.cluster.status()]
    assert all(pid is not None for pid in pids)
    stopped = run_cli(cluster.env, "kafka", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "3 nodes" in stopped.stdout
    after = run_cli(cluster.env, "kafka", "status")
    assert after.returncode == 3, after.stdout
    assert [row[4] for row in node_rows(after.stdout)] == ["stopped"] * 3
    assert not any(alive(pid) for pid in pids if pid is not None)

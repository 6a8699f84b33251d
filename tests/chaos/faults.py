"""The five faults, injected one after another under load, and the time each took to recover.

Recovery is measured, never asserted: from the moment a fault is injected to
the moment the worker group has committed everything that was on
``advisering.case-events`` when the injection ended (every partition's
committed offset at or past its end offset then: the backlog the fault left
included), and the longest the clients waited for any acknowledgement
meanwhile. A group that does not get there within the wait fails the run
with each partition still behind named (committed against end), which tells
a stalled partition from a stalled worker.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException

from advisering.kafka.reading import TopicReadError
from advisering.kafka.topics import CASE_EVENTS, NOTIFICATIONS, citizen_topic_name
from advisering.testing import end_offsets, group_positions, kafka_at
from tests.chaos.load import Load
from tests.chaos.system import SESSION_TIMEOUT, System

RECOVERY_WAIT = 150.0  # seconds a group may take to catch up after one fault


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault: what, how long the injection took, and the recovery times."""

    name: str
    detail: str
    injected_s: float  # from injecting the fault to handing the bus back (restarts included)
    ack_gap_s: float  # the longest wait for any acknowledgement from injection to catch-up
    caught_up_s: float  # to the group committing all that was on the topic after the fault


def topics_of(system: System) -> list[str]:
    return [CASE_EVENTS, NOTIFICATIONS, citizen_topic_name(system.app_id)]


def caught_up(system: System, ends: dict[int, int]) -> tuple[bool, list[str]]:
    """Has the worker group committed up to ``ends`` on case-events? And what lags, if not."""
    try:
        positions = group_positions(kafka_at(system.bootstrap), system.app_id, [CASE_EVENTS])
    except (KafkaException, TopicReadError) as exc:  # the cluster is still coming back
        return False, [f"probe failed: {exc}"]
    behind = [f"{CASE_EVENTS}[{partition}] committed {committed} < {ends[partition]}"
              for _, partition, committed, _ in positions
              if committed < ends.get(partition, 0)]
    return not behind, behind


def safe_ends(system: System) -> dict[int, int]:
    """The end offsets of case-events now, retried while the cluster answers slowly."""
    for _ in range(60):
        try:
            return end_offsets(kafka_at(system.bootstrap), CASE_EVENTS)
        except (KafkaException, TopicReadError):
            time.sleep(1)
    return end_offsets(kafka_at(system.bootstrap), CASE_EVENTS)


def wait_caught_up(system: System, ends: dict[int, int], since: float, fault: str) -> float:
    """Seconds from ``since`` until the group committed ``ends``; fails naming what lags."""
    behind: list[str] = []
    while time.monotonic() - since < RECOVERY_WAIT:
        done, behind = caught_up(system, ends)
        if done:
            return time.monotonic() - since
        time.sleep(0.5)
    raise AssertionError(f"after {fault}: the worker group did not catch up within "
                         f"{RECOVERY_WAIT:.0f}s: {'; '.join(behind)}")


def kill_busiest_leader(system: System, load: Load) -> str:  # noqa: ARG001 - one signature
    """SIGKILL the node leading most case-event partitions; restart it; leaders back."""
    faults = system.faults
    victim = faults.leader_of_most_partitions(CASE_EVENTS)
    led = sorted(p for p, leader in faults.leaders(CASE_EVENTS).items() if leader == victim)
    faults.kill(victim)
    time.sleep(5)  # the load runs on two nodes meanwhile
    faults.restart(victim)
    faults.wait_until_in_sync(topics_of(system), timeout=RECOVERY_WAIT)
    faults.elect_preferred_leaders(topics_of(system))
    return f"node {victim} (led partitions {led})"


def pause_worker(system: System, load: Load) -> str:  # noqa: ARG001
    """SIGSTOP worker a past its session timeout, then SIGCONT it: a zombie wakes up."""
    pid = system.workers.pid("a")
    os.kill(pid, signal.SIGSTOP)
    time.sleep(SESSION_TIMEOUT + 4)
    os.kill(pid, signal.SIGCONT)
    return f"worker a (pid {pid}) paused {SESSION_TIMEOUT + 4:.0f}s"


def kill_worker(system: System, load: Load) -> str:  # noqa: ARG001
    """SIGKILL worker b; the supervisor starts it again."""
    pid = system.workers.pid("b")
    os.kill(pid, signal.SIGKILL)
    system.workers.wait_restarted("b", pid)
    return f"worker b (pid {pid}) killed and restarted"


def restart_serve(system: System, load: Load) -> str:
    """Restart `serve` while a client's request is in flight."""
    deadline = time.monotonic() + 10
    while not load.any_in_flight() and time.monotonic() < deadline:
        time.sleep(0.005)
    in_flight = load.any_in_flight()
    system.serve.stop()
    code = system.serve.exit_codes[-1]
    system.serve.start()
    return f"serve exited {code}, restarted; a request in flight: {in_flight}"


def outage(system: System, load: Load) -> str:  # noqa: ARG001
    """Stop all three brokers for 20 s, then start them again."""
    cluster = system.faults.cluster
    cluster.stop()
    time.sleep(20)
    cluster.start()
    system.faults.wait_until_in_sync(topics_of(system), timeout=RECOVERY_WAIT)
    return "all 3 nodes stopped 20 s"


FAULTS: tuple[tuple[str, Callable[[System, Load], str]], ...] = (
    ("kill leader", kill_busiest_leader),
    ("pause worker", pause_worker),
    ("kill worker", kill_worker),
    ("restart serve", restart_serve),
    ("brokers down", outage),
)


def inject(system: System, load: Load, name: str,
           action: Callable[[System, Load], str]) -> FaultRecord:
    """Inject one fault and wait until the bus has recovered from it."""
    began = time.monotonic()
    detail = action(system, load)
    injected = time.monotonic() - began
    ends = safe_ends(system)  # what arrived during the fault must be worked off too
    caught = wait_caught_up(system, ends, began, name)
    gap = load.acks.longest_gap(began, began + caught)
    return FaultRecord(name, detail, injected, gap, caught)

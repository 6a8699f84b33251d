"""One measured drain of the scale-out benchmark: N worker processes in one fresh group.

The members are started on a group whose offsets on advisering.case-events
sit at the topic's end, so there is nothing to consume while they join. Once
every member is in the group (the group Stable, each member owning
case-events partitions, all six owned) and every /readyz answers 200, the
round's copy of the backlog is published, and the drain is measured as
benchmarks/scenarios/worker.py measures one worker: from the first record the
group writes to its own topics to the last CreateTime on its output topics,
once the members' /metrics together count every citizen copy processed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from harness.children import Subprocess, cleanup
from harness.kafka import PARTITIONS, delete_app_topics, produce_all

from advisering.kafka.topics import AUDIT, CASE_EVENTS, NOTIFICATIONS
from advisering.testing import end_offsets, group_lag, kafka_at, wait_until_idle
from scenarios.worker import (
    MetricsPoll,
    OutputTally,
    drain,
    prepare_group,
    watch_until_done,
    worker_process,
)

#: Seconds between two looks at the group while it settles, and how many in a row must agree.
SETTLE_POLL = 0.25
SETTLE_CONFIRMATIONS = 2


@dataclass(frozen=True)
class Backlog:
    """What every drain gets: the same records, citizens and pseudonym key."""

    records: list[tuple[bytes, bytes]]
    copies: int  # citizen copies: what the workers' processed counts add up to
    citizens: frozenset[str]  # every party's pseudonym
    # Citizens who are the first party of every event they are in: each one's events
    # share one partition, so they reach its overview in one order however many
    # processes there are. The others also get copies from other partitions, in an
    # order no setup fixes (docs/operators.md, "Ordering"), and rules may see them
    # differently from one drain to the next, even of one process.
    fixed_order: frozenset[str]
    key: str


def owned_partitions(admin: AdminClient, group: str) -> tuple[str, list[set[int]]]:
    """(the group's state, the case-events partitions each member owns)."""
    found = admin.describe_consumer_groups([group])[group].result(timeout=10)
    owned = [{tp.partition for tp in member.assignment.topic_partitions
              if tp.topic == CASE_EVENTS} for member in found.members]
    return found.state.name, owned


def settled(admin: AdminClient, group: str, procs: list[Subprocess]) -> tuple[bool, bool]:
    """(every member in the group and ready, some member owns partitions already)."""
    state, owned = owned_partitions(admin, group)
    assigned = any(owned)
    if state != "STABLE" or len(owned) != len(procs) or not all(owned):
        return False, assigned
    if set().union(*owned) != set(range(PARTITIONS)):
        return False, assigned
    for proc in procs:
        proc.check_alive()
        answer = proc.get("/readyz")
        if answer is None or answer[0] != 200:
            return False, assigned
    return True, assigned


def wait_settled(bootstrap: str, group: str, procs: list[Subprocess],
                 timeout: float) -> dict[str, float]:
    """Wait until the group settled; how long the start and the last rebalance took.

    ``settle_s``: from spawning the processes. ``rebalance_s``: from the first
    moment any member owned partitions (the first member alone, when they did
    not join together) until all members owned theirs and were ready: what a
    member joining a running group costs, counted apart from the drain.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    spawned = time.monotonic()
    first_assigned: float | None = None
    agreed = 0
    while agreed < SETTLE_CONFIRMATIONS:
        if time.monotonic() - spawned > timeout:
            tails = "\n".join(proc.log_tail() for proc in procs)
            raise TimeoutError(f"group {group}: {len(procs)} member(s) not settled within "
                               f"{timeout}s: {owned_partitions(admin, group)}\n{tails}")
        time.sleep(SETTLE_POLL)
        ok, assigned = settled(admin, group, procs)
        if assigned and first_assigned is None:
            first_assigned = time.monotonic()
        agreed = agreed + 1 if ok else 0
    now = time.monotonic()
    return {"settle_s": round(now - spawned, 2),
            "rebalance_s": round(now - (first_assigned or now), 2)}


def member_figures(metrics: dict[str, float]) -> dict[str, float]:
    """One member's own counts from its /metrics."""
    return {name: metrics.get(name, 0.0)
            for name in ("correlated", "accepted", "direct", "repartitioned")}


def figures(backlog: Backlog, tally: OutputTally, poll: MetricsPoll, done_at: float,
            repartition: str, changelog: str) -> dict[str, Any]:
    """The drain's rate and counts (the rate as benchmarks/scenarios/worker.py reports it)."""
    seconds = max(max(tally.last_ts.values()) - tally.first_ts, 1e-3)
    counts = tally.counts
    return {
        "events": backlog.copies,
        "input_events": len(backlog.records),
        "seconds": round(seconds, 3),
        "events_per_s": round(backlog.copies / seconds),
        "seen_done_after_s": round(done_at - tally.first_ts, 3),
        "processed": poll.metrics.get("correlated", 0.0),
        "short": poll.short,
        "direct": poll.metrics.get("direct", 0.0),
        "repartitioned": poll.metrics.get("repartitioned", 0.0),
        "per_member": [member_figures(metrics) for metrics in poll.each],
        "repartition_records": counts[repartition],
        "changelog_records": counts[changelog],
        "notifications": len(tally.notified),
        "notifications_fixed_order": sum(1 for citizen in tally.notified.values()
                                         if citizen in backlog.fixed_order),
        "notification_records": counts[NOTIFICATIONS],
        "audit_records": counts[AUDIT],
    }


def drain_with(bootstrap: str, backlog: Backlog, members: int, workdir: Path,
               timeout: float, settle_timeout: float) -> dict[str, Any]:
    """Start ``members`` workers in a fresh group, let it settle, publish, measure the drain."""
    app_id = f"bench-scaleout-{uuid.uuid4().hex[:8]}"
    repartition, changelog = f"{app_id}-citizen-events", f"{app_id}-citizens-changelog"
    starts = prepare_group(bootstrap, app_id, end_offsets(kafka_at(bootstrap), CASE_EVENTS))
    procs: list[Subprocess] = []
    for number in range(1, members + 1):  # one web port, data dir and log each
        home = workdir / f"{app_id}-{number}"
        home.mkdir(parents=True)
        procs.append(worker_process(bootstrap, app_id, home, backlog.key))

    def stop_all() -> None:  # all at once: a member stopped first would rebalance the rest
        for proc in procs:
            if proc.process is not None and proc.process.poll() is None:
                proc.process.terminate()
        for proc in procs:
            proc.stop()

    result: dict[str, Any] = {"members": members, "app_id": app_id}
    with cleanup(lambda: delete_app_topics(bootstrap, app_id)), cleanup(stop_all):
        for proc in procs:
            proc.start()
        result.update(wait_settled(bootstrap, app_id, procs, settle_timeout))
        published = time.time()
        result["publish_s"] = round(produce_all(bootstrap, CASE_EVENTS, backlog.records), 3)
        tally = OutputTally({repartition, changelog}, set(backlog.citizens))
        poll = MetricsPoll(procs, backlog.copies, spawned=published, idle_lag=lambda: group_lag(
            kafka_at(bootstrap), app_id, [CASE_EVENTS, repartition]))
        done_at, cpu = watch_until_done(bootstrap, starts, tally, poll, timeout)
        drain(bootstrap, starts, tally)
        result.update(figures(backlog, tally, poll, done_at, repartition, changelog))
        try:  # a member that processes but never commits would redo it all after a restart
            wait_until_idle(kafka_at(bootstrap), app_id, [CASE_EVENTS, repartition], timeout=120)
            result["uncommitted"] = None
        except TimeoutError as exc:
            result["uncommitted"] = str(exc)
        result["cpu"] = cpu
        result["timeline"] = poll.timeline
    return result

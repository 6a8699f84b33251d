"""A lease on the worker's partitions: its group membership, confirmed by the broker lately.

Why: without Kafka transactions nothing stops a worker that was stopped
(SIGSTOP, a frozen VM, a long pause of the process) past its session timeout
from writing when it runs again. The group has meanwhile given its
partitions to another worker, which recovered their states from the
changelog and went on. The woken worker's batch, already underway, would
still write its older states to the changelog after the new owner's, and the
partition's next recovery would take them: a citizen's later cases forgotten,
a notification that depends on them never sent. The chaos test lost one this
way (a worker paused past its session, then the other worker killed).

The broker keeps a member's partitions for a session timeout after the last
heartbeat it received, and a rebalance cannot hand them to another member
before the member rejoins or that time runs out. So a state written while a
heartbeat sent less than half a session ago was answered (answered with
success, or with "rebalancing", which the broker only says to a current
member of the current generation) is written by the partition's owner; the
other half of the session is the margin for the write to reach the broker.
:func:`confirm_membership` waits for such an answer before a batch's states
are written, and raises :class:`MembershipLost` when the group shows that
the membership ended: the worker then stops (exit 70) without writing, and
the batch is redone by the partitions' owner.

aiokafka 0.14.0: ``GroupCoordinator._do_heartbeat`` returns True for both
answers; ``GroupCoordinator._on_join_complete`` runs after a successful
SyncGroup; ``reset_generation`` sets ``generation`` to -1 when the broker no
longer knows the member. Faust 0.15.3 sets ``App.consumer_generation_id`` to
the coordinator's generation when the assignment arrives; the consumer runs in
its own thread (``ThreadDelegateConsumer._thread``), whose
``_ensure_consumer()`` is the AIOKafkaConsumer with ``_coordinator``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.consumer.group_coordinator import GroupCoordinator

#: The attribute the coordinator's lease is kept in (set in the consumer's thread).
LEASE_ATTRIBUTE = "_advisering_lease"


@dataclass(frozen=True, slots=True)
class Lease:
    """The broker's last word that this member holds its assignment."""

    confirmed_at: float  # time.monotonic() when the confirming request was sent
    generation: int


class MembershipLost(RuntimeError):
    """The worker is no longer (or cannot be shown to be) a member of its group's generation."""


def track_membership() -> None:
    """Make every aiokafka group coordinator keep a :class:`Lease` (once per process).

    A class-level wrap: Faust creates the coordinator in its consumer thread
    when the consumer starts, before any hook of the app could reach it.
    """
    if getattr(GroupCoordinator, "_advisering_tracked", False):
        return
    heartbeat = GroupCoordinator._do_heartbeat
    joined = GroupCoordinator._on_join_complete

    async def heartbeat_confirming(self: Any) -> bool:
        sent, generation = time.monotonic(), self.generation
        answered: bool = await heartbeat(self)
        if answered and generation >= 0:
            setattr(self, LEASE_ATTRIBUTE, Lease(sent, generation))
        return answered

    async def join_confirming(self: Any, generation: int, *args: Any) -> None:
        # Called once SyncGroup succeeded: the broker has just counted us in.
        setattr(self, LEASE_ATTRIBUTE, Lease(time.monotonic(), generation))
        await joined(self, generation, *args)

    GroupCoordinator._do_heartbeat = heartbeat_confirming
    GroupCoordinator._on_join_complete = join_confirming
    GroupCoordinator._advisering_tracked = True


def coordinator_of(app: faust.App) -> Any:
    """The group coordinator of the app's aiokafka consumer (raises before it started)."""
    consumer: Any = app.consumer
    return consumer._thread._ensure_consumer()._coordinator


def lease_state(coordinator: Any, expected: int, fresh: float, now: float) -> bool:
    """True when confirmed in ``expected`` within ``fresh`` s; raises if the generation ended."""
    current = coordinator.generation
    if current != expected:
        raise MembershipLost(f"the group's generation is {current}, the assignment's {expected}")
    lease: Lease | None = getattr(coordinator, LEASE_ATTRIBUTE, None)
    return lease is not None and lease.generation == expected and now - lease.confirmed_at < fresh


async def confirm_membership(app: faust.App, *, fresh: float, patience: float,
                             poll: float = 0.05) -> None:
    """Return once the broker confirmed, under ``fresh`` seconds ago, the current assignment.

    Raises :class:`MembershipLost` when the generation the assignment came
    with has ended, or when no confirmation came within ``patience`` seconds
    (the group coordinator unreachable all that time).
    """
    expected = int(app.consumer_generation_id)
    coordinator = coordinator_of(app)
    deadline = time.monotonic() + patience
    while not lease_state(coordinator, expected, fresh, time.monotonic()):
        if time.monotonic() >= deadline:
            raise MembershipLost(f"membership of generation {expected} not confirmed "
                                 f"for {patience:g} s")
        await asyncio.sleep(poll)

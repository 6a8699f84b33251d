"""The membership lease: aiokafka's heartbeat and join code confirm it; the fence waits on it.

The heartbeat and join-completion methods run are aiokafka 0.14's real ones
(wrapped by ``faust_door.track_membership``), on a stand-in coordinator that
answers as the broker would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.coordinator.protocol import ConsumerProtocol

from advisering.worker import faust_door
from advisering.worker.faust_door.membership import LEASE_ATTRIBUTE, Lease, lease_state

NO_ERROR, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS = 0, 25, 22, 27


@dataclass
class Coordinator:
    """What aiokafka's heartbeat and join completion read of their coordinator; answers queued."""

    generation: int = 7
    group_id: str = "chaos-worker"
    member_id: str = "member-1"
    answers: list[int] = field(default_factory=list)
    rejoin_requested: bool = False

    async def _send_req(self, _request: Any) -> Any:
        return SimpleNamespace(error_code=self.answers.pop(0))

    def coordinator_dead(self) -> None:
        pass

    def request_rejoin(self) -> None:
        self.rejoin_requested = True

    def reset_generation(self) -> None:
        self.generation = -1


def lease(coordinator: Any) -> Lease | None:
    return getattr(coordinator, LEASE_ATTRIBUTE, None)


@pytest.fixture(autouse=True)
def tracked() -> None:
    faust_door.track_membership()


async def heartbeat(coordinator: Coordinator, answer: int) -> bool:
    coordinator.answers.append(answer)
    answered: bool = await GroupCoordinator._do_heartbeat(  # noqa: SLF001
        coordinator)  # type: ignore[arg-type]
    return answered


async def test_an_answered_heartbeat_confirms_the_lease_from_when_it_was_sent() -> None:
    """A successful heartbeat sets the lease to its generation and to the time before sending."""
    coordinator = Coordinator()
    before = time.monotonic()
    assert await heartbeat(coordinator, NO_ERROR)
    found = lease(coordinator)
    assert found is not None and found.generation == 7
    assert before <= found.confirmed_at <= time.monotonic()


async def test_rebalancing_answer_confirms_the_lease_too() -> None:
    """'Rebalancing' is said only to a current member: it confirms the lease (and asks a rejoin)."""
    coordinator = Coordinator()
    assert await heartbeat(coordinator, REBALANCE_IN_PROGRESS)
    assert coordinator.rejoin_requested
    assert lease(coordinator) is not None


@pytest.mark.parametrize("answer", [UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION])
async def test_a_member_the_broker_no_longer_knows_gets_no_lease_and_loses_its_generation(
        answer: int) -> None:
    """An unknown member or a stale generation leaves no lease, and the fence sees the end."""
    coordinator = Coordinator()
    assert not await heartbeat(coordinator, answer)
    assert lease(coordinator) is None and coordinator.generation == -1
    with pytest.raises(faust_door.MembershipLost):
        lease_state(coordinator, 7, fresh=3.0, now=time.monotonic())


async def test_a_completed_join_confirms_the_lease_in_the_new_generation() -> None:
    """aiokafka's join completion (after SyncGroup) sets the lease in the new generation."""
    assigned: list[Any] = []
    subscription = SimpleNamespace(
        assign_from_subscribed=assigned.append, subscription=SimpleNamespace(assignment=None),
        assigned_partitions=set, listener=None)
    refresh_stopped: list[bool] = []

    async def stop_refresh() -> None:
        refresh_stopped.append(True)

    coordinator = SimpleNamespace(
        _lookup_assignor=lambda _protocol: SimpleNamespace(on_assignment=lambda _a: None),
        _subscription=subscription, _stop_commit_offsets_refresh_task=stop_refresh,
        start_commit_offsets_refresh_task=lambda _assignment: None, group_id="g")
    payload = ConsumerProtocol.ASSIGNMENT(0, [("advisering.case-events", [1, 2])], b"").encode()
    await GroupCoordinator._on_join_complete(  # type: ignore[arg-type]  # noqa: SLF001
        coordinator, 9, "member-1", "roundrobin", payload)
    found = lease(coordinator)
    assert found is not None and found.generation == 9
    assert refresh_stopped and assigned  # aiokafka's own completion ran too


def test_lease_state_wants_the_assignments_generation_and_a_fresh_confirmation() -> None:
    """Fresh and in the assignment's generation: yes; stale or of another generation: not yet."""
    coordinator = Coordinator()
    now = time.monotonic()
    assert not lease_state(coordinator, 7, fresh=3.0, now=now)  # never confirmed
    setattr(coordinator, LEASE_ATTRIBUTE, Lease(now - 1.0, 7))
    assert lease_state(coordinator, 7, fresh=3.0, now=now)
    assert not lease_state(coordinator, 7, fresh=3.0, now=now + 2.5)  # 3.5 s old
    setattr(coordinator, LEASE_ATTRIBUTE, Lease(now, 6))  # confirmed, but another generation
    assert not lease_state(coordinator, 7, fresh=3.0, now=now)
    coordinator.generation = 8  # the group moved on without this assignment
    with pytest.raises(faust_door.MembershipLost):
        lease_state(coordinator, 7, fresh=3.0, now=now)


def app_with(coordinator: Coordinator, generation: int = 7) -> Any:
    """The parts of a Faust app the fence reads: its generation and its consumer's coordinator."""
    kafka = SimpleNamespace(_coordinator=coordinator)
    thread = SimpleNamespace(_ensure_consumer=lambda: kafka)
    return SimpleNamespace(consumer=SimpleNamespace(_thread=thread),
                           consumer_generation_id=generation)


async def test_the_fence_waits_for_the_next_heartbeat_after_a_pause() -> None:
    """A stale lease (a pause) holds the writer until a heartbeat is answered again."""
    coordinator = Coordinator()
    setattr(coordinator, LEASE_ATTRIBUTE, Lease(time.monotonic() - 10.0, 7))
    fence = asyncio.create_task(faust_door.confirm_membership(
        app_with(coordinator), fresh=3.0, patience=30.0, poll=0.01))
    await asyncio.sleep(0.2)
    assert not fence.done()
    assert await heartbeat(coordinator, NO_ERROR)
    await asyncio.wait_for(fence, 5.0)


async def test_the_fence_refuses_when_the_broker_says_the_member_is_gone() -> None:
    """A woken zombie: the heartbeat after the pause is refused, so the fence raises."""
    coordinator = Coordinator()
    setattr(coordinator, LEASE_ATTRIBUTE, Lease(time.monotonic() - 10.0, 7))
    fence = asyncio.create_task(faust_door.confirm_membership(
        app_with(coordinator), fresh=3.0, patience=30.0, poll=0.01))
    await asyncio.sleep(0.1)
    assert not await heartbeat(coordinator, UNKNOWN_MEMBER_ID)
    with pytest.raises(faust_door.MembershipLost):
        await asyncio.wait_for(fence, 5.0)


async def test_the_fence_gives_up_after_its_patience() -> None:
    """No answer at all within the patience (the coordinator away): the fence raises."""
    coordinator = Coordinator()
    with pytest.raises(faust_door.MembershipLost, match="not confirmed"):
        await faust_door.confirm_membership(app_with(coordinator), fresh=3.0, patience=0.1,
                                            poll=0.01)


async def test_the_coordinator_is_where_the_door_reads_it() -> None:
    """An AIOKafkaConsumer has the ``_coordinator`` attribute the fence reads (aiokafka 0.14)."""
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    assert hasattr(consumer, "_coordinator")

"""The one door to faust's, mode's and aiokafka's insides.

Whatever advisering needs from these libraries beyond their documented
surface is reached through this module, so that a new library version that
moves it breaks this package and its test (``tests/unit/test_faust_door.py``),
not the worker in production. Every function names the version its code was
read from; :data:`PRIVATE_NAMES` lists the private names themselves, and the
test checks that each still exists. Read from faust-streaming 0.15.3,
mode-streaming 0.7.1 and aiokafka 0.14.0 (the versions pyproject.toml pins).

What goes through here:

* whether the app crashed, and why (mode's ``Service.crashed`` /
  ``crash_reason``, set synchronously by ``Service.crash``);
* the readiness facts (``App.rebalancing``, ``App.in_recovery``,
  ``TableManager.recovery.completed``);
* a hook on the worker's stop signals (mode's ``Worker``);
* Faust's aiokafka producer (``Producer._ensure_producer``), which the
  worker's batched sends use through aiokafka's public batch API;
* the security arguments Faust gives aiokafka (``credentials_to_aiokafka_auth``,
  ``Producer._settings_auth``), read by the Kafka connection's tests;
* the current event of a task (``faust.streams._current_event``), which the
  agents set themselves because ``take_events`` hands them events taken in
  another task;
* the citizens table's serializers, overwritten after construction, and its
  changelog: records written in Faust's own format by the worker's batched
  sends, then the store and ``set_persisted_offset``, as Faust's
  ``Table.__setitem__`` and ``_on_changelog_sent`` would do one by one;
* the consumer's drain loop (``Consumer._drain_messages``), replaced by
  :func:`drain_in_batches`: the same loop with its rebalance guard per
  fetched batch instead of per record (:func:`deliver_fetched_batches`);
* the consumer's fetch in its thread (``ThreadDelegateConsumer._getmany``):
  records ``getmany`` drops are put back (:func:`put_back_dropped_fetches`);
* the consumer's commit and seek (``Consumer._commit``, ``perform_seek``),
  so that a seek does not set the offset books behind a commit that landed
  during it (:func:`keep_commits_across_seeks`), and no commit is made while
  the books do not know a partition's committed offset
  (:func:`commit_from_known_start`), in ``books.py``;
* the agent's events in each input partition's offset order, a record
  after a gap held back and the partition read again
  (:class:`PartitionOrder`, ``order.py``);
* the group coordinator's heartbeats and joins, a lease on the worker's
  partitions that its state writes wait for (:func:`confirm_membership`,
  ``membership.py``).
"""

from __future__ import annotations

import signal
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.streams import _current_event, current_event
from faust.types import TP
from faust.worker import Worker

from advisering.worker.faust_door.books import (
    PERFORM_SEEK_SHA256,
    commit_from_known_start,
    keep_commits_across_seeks,
    restore_landed_commits,
)
from advisering.worker.faust_door.consumer import (
    DRAIN_MESSAGES_SHA256,
    GETMANY_SHA256,
    CommitHole,
    HoleRepair,
    commit_holes,
    deliver_fetched_batches,
    drain_in_batches,
    input_lag,
    put_back_dropped_fetches,
)
from advisering.worker.faust_door.membership import (
    Lease,
    MembershipLost,
    confirm_membership,
    coordinator_of,
    track_membership,
)
from advisering.worker.faust_door.order import PartitionOrder, seek_rereads

__all__ = [
    "DRAIN_MESSAGES_SHA256", "GETMANY_SHA256", "PERFORM_SEEK_SHA256", "STOP_SIGNALS",
    "CommitHole", "HoleRepair", "Lease", "MembershipLost", "PartitionOrder", "PrivateName",
    "aiokafka_auth", "aiokafka_producer", "aiokafka_producer_settings", "changelog_record",
    "commit_from_known_start", "commit_holes", "confirm_membership", "coordinator_of",
    "crash_reason", "crashed", "deliver_fetched_batches", "drain_in_batches",
    "get_current_event", "input_lag", "keep_commits_across_seeks", "put_back_dropped_fetches",
    "readiness", "restore_landed_commits", "seek_rereads", "set_current_event", "store_states",
    "track_membership", "use_table_serializers", "worker_class",
]

#: The signals mode's worker stops on.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class PrivateName:
    """A private name this module relies on, where it lives and the version it was read from."""

    module: str
    name: str  # dotted below the module: "Class.attribute"
    read_from: str
    why: str


PRIVATE_NAMES: tuple[PrivateName, ...] = (
    PrivateName("faust.streams", "_current_event", "faust-streaming 0.15.3",
                "set_current_event: the context variable current_event() reads"),
    PrivateName("faust.transport.drivers.aiokafka", "Producer._ensure_producer",
                "faust-streaming 0.15.3", "aiokafka_producer: Faust's started AIOKafkaProducer"),
    PrivateName("faust.transport.drivers.aiokafka", "Producer._settings_default",
                "faust-streaming 0.15.3", "aiokafka_producer_settings: what AIOKafkaProducer gets"),
    PrivateName("faust.transport.drivers.aiokafka", "Producer._settings_auth",
                "faust-streaming 0.15.3", "aiokafka_producer_settings: security settings"),
    PrivateName("faust.transport.drivers.aiokafka", "credentials_to_aiokafka_auth",
                "faust-streaming 0.15.3",
                "aiokafka_auth: the security arguments Faust gives its aiokafka consumers"),
    PrivateName("faust.transport.drivers.aiokafka", "Producer._settings_extra",
                "faust-streaming 0.15.3", "aiokafka_producer_settings: idempotence (EOS only)"),
    PrivateName("mode.worker", "Worker._on_sigterm", "mode-streaming 0.7.1",
                "worker_class: the loop handler install_signal_handlers registers for SIGTERM"),
    PrivateName("mode.worker", "Worker._on_sigint", "mode-streaming 0.7.1",
                "worker_class: the loop handler install_signal_handlers registers for SIGINT"),
    PrivateName("faust.transport.consumer", "Consumer._drain_messages", "faust-streaming 0.15.3",
                "deliver_fetched_batches: the drain loop it replaces (the Fetcher calls it)"),
    PrivateName("faust.transport.consumer", "Consumer._add_gap", "faust-streaming 0.15.3",
                "drain_in_batches: records a gap in the offsets read, as the original loop"),
    PrivateName("faust.tables.manager", "TableManager._recovery", "faust-streaming 0.15.3",
                "readiness: the Recovery service, read without creating it"),
    PrivateName("faust.transport.consumer", "Consumer._commit", "faust-streaming 0.15.3",
                "keep_commits_across_seeks: the commit whose success it remembers"),
    PrivateName("faust.transport.consumer", "ThreadDelegateConsumer._getmany",
                "faust-streaming 0.15.3",
                "put_back_dropped_fetches: the fetch in the consumer thread it wraps"),
    PrivateName("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread._ensure_consumer",
                "faust-streaming 0.15.3",
                "put_back_dropped_fetches: the AIOKafkaConsumer it seeks back, in its thread"),
    PrivateName("faust.transport.consumer", "Consumer._new_offset", "faust-streaming 0.15.3",
                "commit_from_known_start: the commit's offset, held while the start is unknown"),
    PrivateName("aiokafka.consumer.group_coordinator", "GroupCoordinator._do_heartbeat",
                "aiokafka 0.14.0", "track_membership: a heartbeat answered confirms the lease"),
    PrivateName("aiokafka.consumer.group_coordinator", "GroupCoordinator._on_join_complete",
                "aiokafka 0.14.0", "track_membership: a completed join confirms the lease"),
)



def crashed(app: faust.App) -> bool:
    """True from the moment ``app.crash(...)`` was called (mode's crashed event is set)."""
    return bool(app.crashed)


def crash_reason(app: faust.App) -> BaseException | None:
    """The exception the app crashed with, if it did."""
    reason = app.crash_reason
    return reason if isinstance(reason, BaseException) else None


def readiness(app: faust.App) -> tuple[bool, bool, bool]:
    """(rebalancing, recovering, recovered) of the app's consumer and tables.

    faust-streaming 0.15.3: ``Recovery`` sets ``app.in_recovery`` while it
    replays changelogs and sets ``recovery.completed`` once it is done. The
    recovery is read as ``TableManager._recovery``, not by its property: the
    property creates the Recovery service on first use, and the worker's
    watchdog thread reads this too. A Recovery created in that thread bound
    its events to no running loop, and the worker never started.
    """
    recovering = bool(getattr(app, "in_recovery", False))
    recovery = getattr(app.tables, "_recovery", None)
    recovered = recovery is not None and recovery.completed.is_set()
    return bool(app.rebalancing), recovering, recovered


def aiokafka_producer(app: faust.App) -> Any:
    """Faust's AIOKafkaProducer (the app starts it before the agents, so look it up late).

    faust-streaming 0.15.3: ``faust.transport.drivers.aiokafka.Producer`` keeps
    the aiokafka producer it made and hands it out by ``_ensure_producer()``.
    The worker's sends use only aiokafka's public batch API on it
    (``create_batch``, ``send_batch``, ``partitions_for``).
    """
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


def aiokafka_producer_settings(app: faust.App) -> dict[str, Any]:
    """The keyword arguments Faust will give its AIOKafkaProducer (read, not started).

    faust-streaming 0.15.3: ``Producer._new_producer`` passes
    ``_settings_default()`` (acks, request timeout, sizes), ``_settings_auth()``
    and ``_settings_extra()`` (idempotence, only in exactly-once mode) to
    ``aiokafka.AIOKafkaProducer``. The delivery-guarantee tests check them.
    """
    producer: Any = app.producer
    return {**producer._settings_default(), **producer._settings_auth(),
            **producer._settings_extra()}


def aiokafka_auth(app: faust.App) -> dict[str, Any]:
    """The security arguments Faust gives its aiokafka consumer (read, nothing started).

    faust-streaming 0.15.3: ``AIOKafkaConsumerThread._create_worker_consumer``
    and ``_create_client_consumer`` pass
    ``credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)``
    to ``aiokafka.AIOKafkaConsumer``, and the producer the same function's
    result (``Producer._settings_auth``, see :func:`aiokafka_producer_settings`).
    The connection tests check that TLS, SCRAM-SHA-512 and the credentials
    of ``ADVISERING_KAFKA_*`` arrive there unchanged.
    """
    from faust.transport.drivers.aiokafka import (  # noqa: PLC0415 - read when asked
        credentials_to_aiokafka_auth,
    )

    return dict(credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context))


def set_current_event(event: Any) -> None:
    """Make ``event`` the current event of this task, as Faust's stream iteration does.

    A table finds the partition of a key (for its changelog record and, with
    RocksDB, its database) from the current event. ``take_events`` takes the
    events in Faust's drainer task, so the agent sets it itself, in its own
    task's context only. faust-streaming 0.15.3: ``Stream._py_aiter`` sets the
    context variable ``faust.streams._current_event`` to a weak reference.
    """
    _current_event.set(weakref.ref(event))


def get_current_event() -> Any:
    """The event Faust (or :func:`set_current_event`) made current in this task."""
    return current_event()


def use_table_serializers(table: Any, *, key: str, value: str) -> None:
    """Give ``table`` these codecs, which Faust's ``Table`` derives only from types.

    faust-streaming 0.15.3: ``Collection.__init__`` sets ``key_serializer`` and
    ``value_serializer`` from ``key_type``/``value_type`` (json unless bytes or
    a Record), and ``Collection.data`` creates the store on first use with the
    table's serializers of that moment. So call this before anything reads
    ``table.data``; the changelog topic is declared with the same codecs.
    """
    table.key_serializer = key
    table.value_serializer = value


ChangelogRecord = tuple[str, int, bytes, bytes | None]


def changelog_record(table: Any, partition: int, key: bytes,
                     value: bytes | None) -> ChangelogRecord:
    """The record ``table[key] = value`` would write to its changelog, for a batched send.

    faust-streaming 0.15.3, ``Collection.send_changelog``: the table's
    changelog topic, the partition of the event being processed, key and value
    encoded by the table's serializers (here ``raw`` and the caller's encoding
    of the value), ``None`` for a deleted key. Recovery
    (``Table.apply_changelog_batch``) then reads it as Faust's own.
    """
    return (table.changelog_topic.get_topic_name(), partition, key, value)


def store_states(table: Any, states: Iterable[tuple[bytes, Any | None, Any]],
                 written: Mapping[tuple[str, int], int]) -> None:
    """Put each (key, value or None to delete, its event) into the table's store.

    Call it after the changelog records were acknowledged; ``written`` is the
    last changelog offset per (topic, partition). faust-streaming 0.15.3: the
    RocksDB store's ``_set`` picks the partition's database by the current
    event, so each event is made current first; ``Collection._on_changelog_sent``
    passes each changelog offset to ``store.set_persisted_offset`` so that a
    RocksDB store's recovery starts after it (the memory store ignores it).
    """
    store = table.data
    for key, value, event in states:
        set_current_event(event)
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
    for (topic, partition), offset in written.items():
        store.set_persisted_offset(TP(topic, partition), offset)


SignalCallback = Callable[[int], None]


def worker_class(on_signal: SignalCallback) -> type[Worker]:
    """A Faust ``Worker`` that also tells ``on_signal`` of every SIGTERM/SIGINT.

    mode-streaming 0.7.1: ``Worker.install_signal_handlers`` registers
    ``_on_sigterm``/``_on_sigint`` with ``loop.add_signal_handler`` (asyncio
    writes the signal number to its wake-up fd and calls mode's handler in the
    loop). After a crash, mode's own stop may hang and a second signal then
    does nothing, so the worker also needs to hear of the signal outside the
    loop: asyncio's no-op Python-level handler is replaced by one calling
    ``on_signal`` (which must only record it); the C-level handler still wakes
    mode's loop handler.
    """

    class SignalledWorker(Worker):
        def install_signal_handlers(self) -> None:
            super().install_signal_handlers()
            for signum in STOP_SIGNALS:
                signal.signal(signum, _chained(on_signal))

    return SignalledWorker


def _chained(on_signal: SignalCallback) -> Callable[[int, Any], None]:
    def handler(signum: int, _frame: Any) -> None:
        on_signal(signum)

    return handler

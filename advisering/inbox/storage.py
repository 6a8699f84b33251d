"""The one interface of the inbox's stores, and the choice between them.

``ADVISERING_INBOX_DB`` chooses: a file path is SQLite (``InboxStore``, the
embedded default for one machine and the demo), a ``postgresql://`` URL is
PostgreSQL (``PostgresStore``, shared by several ``serve`` replicas).

The interface is asynchronous because ``serve`` is: PostgreSQL is reached
through psycopg's async pool, and SQLite (a synchronous library whose
commits wait for the disk) is adapted by running each call in a worker
thread (``SqliteStorage``). Callers (the API, the consumer, durable delivery,
expiry) see only ``InboxStorage`` and never know which store they have.

``shared`` says whether other processes write the same store. If they do,
their new notifications reach this process's live streams through
``follow`` (PostgreSQL LISTEN/NOTIFY), and so do this process's own: the
consumer then does not hand them to the streams itself, so none is shown
twice. SQLite belongs to one process; its consumer feeds the streams.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Protocol

from advisering.engine.notification import Notification
from advisering.inbox.migrations import Migrated
from advisering.inbox.postgres import PoolLimits, PostgresStore
from advisering.inbox.store import ChannelsFor, DueDelivery, InboxItem, InboxStore, Viewer
from advisering.settings import Settings

Publish = Callable[[list[Notification]], None]
"""Where followed notifications go (``Broadcast.publish``); called on the event loop."""
Wanted = Callable[[str, str, str | None], bool]
"""(department, unit, caseworker) -> whether any open stream could show such a notification."""


class InboxStorage(Protocol):
    """What the inbox keeps: notifications, read state, feedback and pending deliveries."""

    shared: bool

    async def open(self) -> Migrated:
        """Connect and bring the schema to the newest version (see ``migrations``)."""

    async def close(self) -> None:
        """Release the connections."""

    async def add_many(self, notifications: Iterable[Notification], *,
                       channels_for: ChannelsFor | None = None) -> list[Notification]:
        """Store those not seen before (by id) in one transaction; returns the new ones."""

    async def mark_pending(self, notification_id: str, channels: Iterable[str]) -> None:
        """Record deliveries as due (a settled one stays settled)."""

    async def mark_settled(self, notification_id: str, channel: str, outcome: str) -> bool:
        """Record a delivery's final outcome; False when no such delivery was recorded."""

    async def unsettled(self) -> list[DueDelivery]:
        """Every pending delivery with its notification, in arrival order."""

    async def deliveries(self, notification_id: str) -> dict[str, tuple[str, str | None]]:
        """Channel -> (state, outcome) of one notification's deliveries."""

    async def list(self, viewer: Viewer, *, unread: bool | None = None,
                   severity: str | None = None, limit: int = 50,
                   offset: int = 0) -> tuple[list[InboxItem], int, int]:
        """(page, total matching, unread count); unread first, newest first."""

    async def get(self, viewer: Viewer, notification_id: str) -> InboxItem | None:
        """One notification the viewer may see, or None."""

    async def mark_read(self, viewer: Viewer, notification_id: str) -> bool:
        """Mark one read (an earlier read time is kept); False when not visible."""

    async def mark_all_read(self, viewer: Viewer) -> int:
        """Mark every unread one the viewer sees read; returns how many."""

    async def set_feedback(self, viewer: Viewer, notification_id: str, useful: bool,
                           reason: str | None) -> str | None:
        """Record feedback; the rule id, or None when the viewer cannot see it."""

    async def feedback_counts(self) -> dict[tuple[str, str], int]:
        """(rule, useful|not_useful) -> count."""

    async def expire(self, retention: dt.timedelta) -> int:
        """Delete read notifications read longer ago than ``retention``; returns how many."""

    async def follow(self, publish: Publish, wanted: Wanted) -> None:
        """Until cancelled: hand every newly stored notification ``wanted`` to ``publish``."""


class SqliteStorage:
    """``InboxStore`` (synchronous SQLite) behind the async interface: each call in a thread."""

    shared = False

    def __init__(self, store: InboxStore) -> None:
        self.store = store
        self._opened = False

    async def open(self) -> Migrated:
        """As ``InboxStorage.open``: the file was migrated when it was opened; later, again."""
        if not self._opened:
            self._opened = True
            return self.store.migrated
        return await asyncio.to_thread(self.store.migrate)

    async def close(self) -> None:
        """As ``InboxStorage.close``."""
        await asyncio.to_thread(self.store.close)

    async def add_many(self, notifications: Iterable[Notification], *,
                       channels_for: ChannelsFor | None = None) -> list[Notification]:
        """As ``InboxStorage.add_many``."""
        return await asyncio.to_thread(self.store.add_many, list(notifications),
                                       channels_for=channels_for)

    async def mark_pending(self, notification_id: str, channels: Iterable[str]) -> None:
        """As ``InboxStorage.mark_pending``."""
        await asyncio.to_thread(self.store.mark_pending, notification_id, list(channels))

    async def mark_settled(self, notification_id: str, channel: str, outcome: str) -> bool:
        """As ``InboxStorage.mark_settled``."""
        return await asyncio.to_thread(self.store.mark_settled, notification_id, channel,
                                       outcome)

    async def unsettled(self) -> list[DueDelivery]:
        """As ``InboxStorage.unsettled``."""
        return await asyncio.to_thread(self.store.unsettled)

    async def deliveries(self, notification_id: str) -> dict[str, tuple[str, str | None]]:
        """As ``InboxStorage.deliveries``."""
        return await asyncio.to_thread(self.store.deliveries, notification_id)

    async def list(self, viewer: Viewer, *, unread: bool | None = None,
                   severity: str | None = None, limit: int = 50,
                   offset: int = 0) -> tuple[list[InboxItem], int, int]:
        """As ``InboxStorage.list``."""
        return await asyncio.to_thread(self.store.list, viewer, unread=unread,
                                       severity=severity, limit=limit, offset=offset)

    async def get(self, viewer: Viewer, notification_id: str) -> InboxItem | None:
        """As ``InboxStorage.get``."""
        return await asyncio.to_thread(self.store.get, viewer, notification_id)

    async def mark_read(self, viewer: Viewer, notification_id: str) -> bool:
        """As ``InboxStorage.mark_read``."""
        return await asyncio.to_thread(self.store.mark_read, viewer, notification_id)

    async def mark_all_read(self, viewer: Viewer) -> int:
        """As ``InboxStorage.mark_all_read``."""
        return await asyncio.to_thread(self.store.mark_all_read, viewer)

    async def set_feedback(self, viewer: Viewer, notification_id: str, useful: bool,
                           reason: str | None) -> str | None:
        """As ``InboxStorage.set_feedback``."""
        return await asyncio.to_thread(self.store.set_feedback, viewer, notification_id,
                                       useful, reason)

    async def feedback_counts(self) -> dict[tuple[str, str], int]:
        """As ``InboxStorage.feedback_counts``."""
        return await asyncio.to_thread(self.store.feedback_counts)

    async def expire(self, retention: dt.timedelta) -> int:
        """As ``InboxStorage.expire``."""
        return await asyncio.to_thread(self.store.expire, retention)

    async def follow(self, publish: Publish, wanted: Wanted) -> None:
        """Nothing to follow: only this process writes the file (its consumer feeds streams)."""


def storage_for(settings: Settings) -> InboxStorage:
    """The store ``ADVISERING_INBOX_DB`` names; SQLite is opened (and migrated) at once.

    PostgreSQL connects in ``open``: its pool is asynchronous.
    """
    url = settings.inbox_postgres_url()
    if url is not None:
        return PostgresStore(url, PoolLimits.from_settings(settings))
    path = settings.inbox_sqlite_path()
    assert path is not None
    return SqliteStorage(InboxStore(path))

"""The inbox on PostgreSQL: one store for several ``serve`` replicas (psycopg 3, async pool).

The same rows and answers as the SQLite store (``advisering.inbox.store``):
times are ISO 8601 text and ids compare bytewise, so both stores pass one
test suite. What PostgreSQL adds is sharing:

- ``add_many`` inserts with ``ON CONFLICT DO NOTHING``: two replicas that are
  given the same notification (a rebalance, a repeat on the topic) store it
  once, and only the one whose insert won reports it as new (and so
  delivers it to webhooks and e-mail).
- In the same transaction each new notification is announced with
  ``pg_notify`` on ``advisering_inbox``; PostgreSQL sends it to every
  listening replica when (and only if) the transaction commits. The payload
  is the notification id and its recipient's routing keys (department, unit,
  caseworker), never the citizen or the message: a replica with a stream
  that may show it reads the row back (``follow``).
- Read state and feedback are rows, so every replica sees them at once.

A replica's LISTEN connection can drop (a database restart); ``follow``
reconnects with a back-off, and a stream that missed notifications meanwhile
still shows them when its page lists the inbox again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from advisering.engine.notification import Notification
from advisering.inbox.migrations import POSTGRES_MIGRATIONS, Migrated, migrate_postgres, now
from advisering.inbox.store import (
    ChannelsFor,
    DueDelivery,
    InboxItem,
    Viewer,
    list_condition,
    visible_condition,
)
from advisering.log import get_logger

if TYPE_CHECKING:
    from advisering.inbox.storage import Publish, Wanted
    from advisering.settings import Settings

log = get_logger(__name__)

CHANNEL = "advisering_inbox"
"""The NOTIFY channel of new notifications."""
LISTEN_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0)
COLUMNS = "body, read_at, feedback, feedback_reason"


@dataclass(frozen=True)
class PoolLimits:
    """``ADVISERING_INBOX_PG_*``: the pool's size and its timeouts."""

    min_size: int = 1
    max_size: int = 10
    connect_timeout: float = 10.0
    pool_timeout: float = 30.0
    statement_timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolLimits:
        """The limits the settings give."""
        return cls(settings.inbox_pg_pool_min, settings.inbox_pg_pool_max,
                   settings.inbox_pg_connect_timeout_seconds,
                   settings.inbox_pg_pool_timeout_seconds,
                   settings.inbox_pg_statement_timeout_seconds)

    def connection_kwargs(self, application: str = "advisering-serve") -> dict[str, Any]:
        """What every connection is opened with (the URL's own options still apply)."""
        return {"connect_timeout": max(1, round(self.connect_timeout)),
                "options": f"-c statement_timeout={round(self.statement_timeout * 1000)}",
                "application_name": application}


def _visible(viewer: Viewer) -> tuple[str, list[object]]:
    """The SQL condition of ``visible_to``: always within the viewer's department."""
    return visible_condition(viewer, "%s")


def _item(row: tuple[Any, ...]) -> InboxItem:
    body: dict[str, object] = orjson.loads(bytes(row[0]))
    return InboxItem(body, row[1], row[2], row[3])


def announcement(n: Notification) -> str:
    """The NOTIFY payload: the id and the recipient's routing keys, nothing about the citizen."""
    r = n.recipient
    return orjson.dumps({"id": n.id, "department": r.department, "unit": r.unit,
                         "caseworker": r.caseworker}).decode()


class PostgresStore:
    """All inbox state in one PostgreSQL database, shared by every replica."""

    shared = True

    def __init__(self, url: str, limits: PoolLimits | None = None) -> None:
        self._url = url  # a secret (may hold the password): never logged
        self.limits = limits or PoolLimits()
        self._pool = AsyncConnectionPool(
            url, min_size=self.limits.min_size, max_size=self.limits.max_size,
            timeout=self.limits.pool_timeout, kwargs=self.limits.connection_kwargs(),
            open=False, name="advisering-inbox")

    async def open(self) -> Migrated:
        """As ``InboxStorage.open``."""
        await self._pool.open(wait=self.limits.min_size > 0, timeout=self.limits.pool_timeout)
        return await self.migrate()

    async def migrate(self) -> Migrated:
        """Apply the missing versions (``migrations.migrate_postgres``, in a worker thread)."""

        def run() -> Migrated:
            with psycopg.connect(self._url, **self.limits.connection_kwargs()) as db:
                return migrate_postgres(db, POSTGRES_MIGRATIONS)

        migrated = await asyncio.to_thread(run)
        if migrated.after != migrated.before:
            log.info("inbox_schema_migrated", store="postgresql", before=migrated.before,
                     after=migrated.after)
        return migrated

    async def close(self) -> None:
        """As ``InboxStorage.close``."""
        await self._pool.close()

    async def add_many(self, notifications: Iterable[Notification], *,
                       channels_for: ChannelsFor | None = None) -> list[Notification]:
        """As ``InboxStorage.add_many``."""
        received = now()
        new: list[Notification] = []
        async with self._pool.connection() as db, db.transaction():
            for n in notifications:
                r = n.recipient
                cur = await db.execute(
                    "INSERT INTO notifications (id, caseworker, unit, department, rule, severity, "
                    "created, received, body) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id",
                    (n.id, r.caseworker, r.unit, r.department, n.rule, n.severity, n.created,
                     received, n.encode()))
                if await cur.fetchone() is None:
                    continue
                new.append(n)
                if channels_for is not None:
                    await self._insert_pending(db, n.id, channels_for(n), received)
                await db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, announcement(n)))
        return new

    @staticmethod
    async def _insert_pending(db: psycopg.AsyncConnection[Any], notification_id: str,
                              channels: Iterable[str], updated: str) -> None:
        async with db.cursor() as cur:
            await cur.executemany(
                "INSERT INTO deliveries (notification_id, channel, state, updated) "
                "VALUES (%s, %s, 'pending', %s) ON CONFLICT DO NOTHING",
                [(notification_id, c, updated) for c in channels])

    async def mark_pending(self, notification_id: str, channels: Iterable[str]) -> None:
        """As ``InboxStorage.mark_pending``."""
        async with self._pool.connection() as db:
            await self._insert_pending(db, notification_id, list(channels), now())

    async def mark_settled(self, notification_id: str, channel: str, outcome: str) -> bool:
        """As ``InboxStorage.mark_settled``."""
        async with self._pool.connection() as db:
            cur = await db.execute(
                "UPDATE deliveries SET state = 'settled', outcome = %s, updated = %s "
                "WHERE notification_id = %s AND channel = %s",
                (outcome, now(), notification_id, channel))
            return bool(cur.rowcount)

    async def unsettled(self) -> list[DueDelivery]:
        """As ``InboxStorage.unsettled``."""
        async with self._pool.connection() as db:
            cur = await db.execute(
                "SELECT n.id, n.body, d.channel FROM deliveries d "
                "JOIN notifications n ON n.id = d.notification_id "
                "WHERE d.state = 'pending' ORDER BY n.seq, d.channel")
            rows = await cur.fetchall()
        due: list[DueDelivery] = []
        for notification_id, body, channel in rows:
            try:
                due.append(DueDelivery(Notification.decode(bytes(body)), str(channel)))
            except ValueError:
                log.error("delivery_body_unreadable", notification_id=notification_id,
                          channel=channel)
        return due

    async def deliveries(self, notification_id: str) -> dict[str, tuple[str, str | None]]:
        """As ``InboxStorage.deliveries``."""
        async with self._pool.connection() as db:
            cur = await db.execute(
                "SELECT channel, state, outcome FROM deliveries WHERE notification_id = %s",
                (notification_id,))
            rows = await cur.fetchall()
        return {str(channel): (str(state), outcome) for channel, state, outcome in rows}

    async def list(self, viewer: Viewer, *, unread: bool | None = None,
                   severity: str | None = None, limit: int = 50,
                   offset: int = 0) -> tuple[list[InboxItem], int, int]:
        """As ``InboxStorage.list``."""
        clause, params = list_condition(viewer, unread, severity, "%s")
        base, base_params = _visible(viewer)
        async with self._pool.connection() as db, db.transaction():
            cur = await db.execute(
                f"SELECT {COLUMNS} FROM notifications WHERE {clause} "  # noqa: S608
                "ORDER BY read_at IS NOT NULL, created DESC, id LIMIT %s OFFSET %s",
                [*params, limit, offset])
            rows = await cur.fetchall()
            cur = await db.execute(
                f"SELECT COUNT(*) FROM notifications WHERE {clause}",  # noqa: S608
                params)
            total = (await cur.fetchone() or (0,))[0]
            cur = await db.execute(
                f"SELECT COUNT(*) FROM notifications WHERE {base} "  # noqa: S608
                "AND read_at IS NULL", base_params)
            unread_count = (await cur.fetchone() or (0,))[0]
        return [_item(row) for row in rows], int(total), int(unread_count)

    async def get(self, viewer: Viewer, notification_id: str) -> InboxItem | None:
        """As ``InboxStorage.get``."""
        where, params = _visible(viewer)
        async with self._pool.connection() as db:
            cur = await db.execute(
                f"SELECT {COLUMNS} FROM notifications "  # noqa: S608
                f"WHERE id = %s AND {where}", [notification_id, *params])
            row = await cur.fetchone()
        return _item(row) if row else None

    async def mark_read(self, viewer: Viewer, notification_id: str) -> bool:
        """As ``InboxStorage.mark_read``."""
        where, params = _visible(viewer)
        async with self._pool.connection() as db:
            cur = await db.execute(
                "UPDATE notifications SET read_at = COALESCE(read_at, %s) "  # noqa: S608
                f"WHERE id = %s AND {where}", [now(), notification_id, *params])
            return bool(cur.rowcount)

    async def mark_all_read(self, viewer: Viewer) -> int:
        """As ``InboxStorage.mark_all_read``."""
        where, params = _visible(viewer)
        async with self._pool.connection() as db:
            cur = await db.execute(
                "UPDATE notifications SET read_at = %s "  # noqa: S608
                f"WHERE read_at IS NULL AND {where}", [now(), *params])
            return int(cur.rowcount)

    async def set_feedback(self, viewer: Viewer, notification_id: str, useful: bool,
                           reason: str | None) -> str | None:
        """As ``InboxStorage.set_feedback``."""
        where, params = _visible(viewer)
        async with self._pool.connection() as db:
            cur = await db.execute(
                "UPDATE notifications SET feedback = %s, feedback_reason = %s, "  # noqa: S608
                f"feedback_at = %s WHERE id = %s AND {where} RETURNING rule",
                ["useful" if useful else "not_useful", reason, now(), notification_id, *params])
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def feedback_counts(self) -> dict[tuple[str, str], int]:
        """As ``InboxStorage.feedback_counts``."""
        async with self._pool.connection() as db:
            cur = await db.execute(
                "SELECT rule, feedback, COUNT(*) FROM notifications WHERE feedback IS NOT NULL "
                "GROUP BY rule, feedback")
            rows = await cur.fetchall()
        return {(rule, verdict): int(count) for rule, verdict, count in rows}

    async def expire(self, retention: dt.timedelta) -> int:
        """As ``InboxStorage.expire``."""
        cutoff = (dt.datetime.now(dt.UTC) - retention).isoformat(timespec="seconds")
        async with self._pool.connection() as db, db.transaction():
            cur = await db.execute(
                "DELETE FROM notifications WHERE read_at IS NOT NULL AND read_at < %s AND id NOT "
                "IN (SELECT notification_id FROM deliveries WHERE state = 'pending')", (cutoff,))
            removed = int(cur.rowcount)
            await db.execute(
                "DELETE FROM deliveries WHERE state = 'settled' AND notification_id NOT IN "
                "(SELECT id FROM notifications)")
        return removed

    async def follow(self, publish: Publish, wanted: Wanted) -> None:
        """LISTEN for new notifications (any replica's), read back those a stream may show."""
        attempt = 0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, **self.limits.connection_kwargs())
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    attempt = 0
                    async for notify in conn.notifies():
                        await self._announced(notify.payload, publish, wanted)
                raise psycopg.OperationalError("the LISTEN connection ended")
            except (psycopg.Error, OSError) as exc:
                delay = LISTEN_RETRY_SECONDS[min(attempt, len(LISTEN_RETRY_SECONDS) - 1)]
                attempt += 1
                log.warning("inbox_listen_lost", error=type(exc).__name__, retry_seconds=delay)
                await asyncio.sleep(delay)

    async def _announced(self, payload: str, publish: Publish, wanted: Wanted) -> None:
        """One NOTIFY: if a stream may show it, read the row and publish it."""
        try:
            keys = orjson.loads(payload)
            wants = wanted(str(keys["department"]), str(keys["unit"]), keys.get("caseworker"))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("inbox_announcement_unreadable")
            return
        if not wants:
            return
        async with self._pool.connection() as db:
            cur = await db.execute("SELECT body FROM notifications WHERE id = %s",
                                   (str(keys["id"]),))
            row = await cur.fetchone()
        if row is None:
            return  # expired in between
        try:
            publish([Notification.decode(bytes(row[0]))])
        except ValueError:
            log.error("inbox_notification_unreadable", notification_id=str(keys["id"]))

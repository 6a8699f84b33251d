"""The caseworkers' inbox in SQLite: notifications, read state and feedback on one machine.

(``advisering.inbox.postgres`` is the same store on PostgreSQL, for several
``serve`` replicas; ``advisering.inbox.storage`` is the interface both offer.)

Durable and idempotent: a notification is stored once by its id (the topic may
carry a repeat after a worker crash), and the consumer commits its Kafka
offsets only after the rows are committed here, so a restart of the service
loses nothing unread and shows nothing twice. Every lookup is within the
viewer's department: a caseworker id is unique only there (an older
database is migrated at open by replacing its two indexes, see
``advisering.inbox.migrations``). Read notifications older than
the retention are deleted: the inbox is no archive (the audit topic is).

The store also remembers each (notification, channel) delivery beyond the
inbox (webhook, e-mail) as ``pending`` until the channel reports it
``settled`` (delivered or dead-lettered), so that deliveries still queued in
memory when the service stops are sent again at the next start.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from advisering.engine.notification import Notification
from advisering.inbox.migrations import Migrated, migrate_sqlite
from advisering.log import get_logger
from advisering.privatefiles import private_database, tighten

log = get_logger(__name__)

SEVERITY_ORDER = ("high", "normal", "info")

ChannelsFor = Callable[[Notification], Iterable[str]]
"""The delivery channels a notification is due on (``DeliveryRouter.channel_names``)."""


@dataclass(frozen=True)
class DueDelivery:
    """A delivery not yet settled: the notification as stored, and the channel it is due on."""

    notification: Notification
    channel: str


@dataclass(frozen=True)
class Viewer:
    """Who asks: a caseworker of a department, and the unit whose unassigned ones they also see.

    A caseworker id is the source system's own, unique only within its
    department: every match is on the pair (department, caseworker), and a
    unit's on (department, unit).
    """

    department: str
    caseworker: str
    unit: str | None = None


def visible_to(viewer: Viewer, notification: Notification) -> bool:
    """True when the notification is the viewer's own or unassigned in the viewer's unit.

    The same rule as ``InboxStore._visible``, for notifications not stored yet (live streams).
    """
    recipient = notification.recipient
    return routed_to(viewer, recipient.department, recipient.unit, recipient.caseworker)


def routed_to(viewer: Viewer, department: str, unit: str, caseworker: str | None) -> bool:
    """``visible_to`` on a recipient's routing keys alone (a PostgreSQL NOTIFY carries no more)."""
    if department != viewer.department:
        return False
    if caseworker:
        return caseworker == viewer.caseworker
    return viewer.unit is not None and unit == viewer.unit


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A stored notification with the viewer-facing state the inbox keeps beside it.

    ``body`` is the notification's JSON exactly as stored: rows written by an
    earlier version are answered with the fields they were stored with.
    """

    body: dict[str, object]
    read_at: str | None
    feedback: str | None
    feedback_reason: str | None

    def to_json(self) -> dict[str, object]:
        """The item as the inbox answers it: the stored JSON, then the read state and feedback."""
        return {**self.body, "read_at": self.read_at, "feedback": self.feedback,
                "feedback_reason": self.feedback_reason}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def visible_condition(viewer: Viewer, mark: str) -> tuple[str, list[object]]:
    """The SQL condition of ``visible_to`` (always within the viewer's department).

    ``mark`` is the driver's parameter placeholder: ``?`` (SQLite) or ``%s`` (psycopg).
    """
    if viewer.unit:
        return (f"department = {mark} AND (caseworker = {mark} OR "
                f"(caseworker IS NULL AND unit = {mark}))",
                [viewer.department, viewer.caseworker, viewer.unit])
    return f"department = {mark} AND caseworker = {mark}", [viewer.department, viewer.caseworker]


def list_condition(viewer: Viewer, unread: bool | None, severity: str | None,
                   mark: str) -> tuple[str, list[object]]:
    """The WHERE clause of an inbox page: visible to the viewer, read state, severity."""
    where, params = visible_condition(viewer, mark)
    filters = [where]
    if unread is True:
        filters.append("read_at IS NULL")
    elif unread is False:
        filters.append("read_at IS NOT NULL")
    if severity:
        filters.append(f"severity = {mark}")
        params.append(severity)
    return " AND ".join(filters), params


class InboxStore:
    """All inbox state; safe to share between the consumer thread and the web handlers."""

    def __init__(self, path: Path | str) -> None:
        if isinstance(path, Path):  # 0600 files in a 0700 folder (advisering.privatefiles)
            private_database(path)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self.migrated = migrate_sqlite(self._db)
        if isinstance(path, Path):
            tighten(path)

    def migrate(self) -> Migrated:
        """Apply missing schema versions again (opening did; another process may add one)."""
        with self._lock:
            self.migrated = migrate_sqlite(self._db)
        return self.migrated

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def add_many(
        self, notifications: Iterable[Notification], *, channels_for: ChannelsFor | None = None,
    ) -> list[Notification]:
        """Store notifications not seen before, in one transaction; returns the new ones.

        With ``channels_for``, each new notification's deliveries are recorded
        as pending in the SAME transaction. The consumer commits its Kafka
        offsets right after this returns, and from then on the topic never
        gives the notification again; recorded in a second transaction, a
        crash between the two would leave a notification in the inbox that no
        channel ever delivers. In one transaction both exist or neither does
        (and then the offsets are not committed and the batch comes again).
        """
        received = _now()
        new: list[Notification] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for n in notifications:
                    recipient = n.recipient
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO notifications (id, caseworker, unit, department, "
                        "rule, severity, created, received, body) VALUES (?,?,?,?,?,?,?,?,?)",
                        (n.id, recipient.caseworker, recipient.unit, recipient.department,
                         n.rule, n.severity, n.created, received, n.encode()),
                    )
                    if cursor.rowcount:
                        new.append(n)
                        if channels_for is not None:
                            self._insert_pending(n.id, channels_for(n), received)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def _insert_pending(self, notification_id: str, channels: Iterable[str], now: str) -> None:
        """Pending rows (caller holds the lock); a delivery already recorded is left as it is."""
        self._db.executemany(
            "INSERT OR IGNORE INTO deliveries (notification_id, channel, state, updated) "
            "VALUES (?, ?, 'pending', ?)", [(notification_id, c, now) for c in channels])

    def mark_pending(self, notification_id: str, channels: Iterable[str]) -> None:
        """Record deliveries as due (a settled one stays settled: it is never sent twice)."""
        with self._lock:
            self._insert_pending(notification_id, channels, _now())

    def mark_settled(self, notification_id: str, channel: str, outcome: str) -> bool:
        """Record a delivery's final outcome; False when no such delivery was recorded."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE deliveries SET state = 'settled', outcome = ?, updated = ? "
                "WHERE notification_id = ? AND channel = ?",
                (outcome, _now(), notification_id, channel))
        return bool(cursor.rowcount)

    def unsettled(self) -> list[DueDelivery]:
        """Every pending delivery with its notification, in the order the notifications came.

        A stored body that is no notification (the database was edited by
        hand, or damaged) is logged and left out: it stays pending, for an
        operator to see in ``deliveries``, and never stops the others.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT n.id, n.body, d.channel FROM deliveries d "
                "JOIN notifications n ON n.id = d.notification_id "
                "WHERE d.state = 'pending' ORDER BY n.rowid, d.channel").fetchall()
        due: list[DueDelivery] = []
        for notification_id, body, channel in rows:
            try:
                due.append(DueDelivery(Notification.decode(body), str(channel)))
            except ValueError:
                log.error("delivery_body_unreadable", notification_id=notification_id,
                          channel=channel)
        return due

    def deliveries(self, notification_id: str) -> dict[str, tuple[str, str | None]]:
        """Channel -> (state, outcome) of one notification's deliveries, for operators."""
        with self._lock:
            rows = self._db.execute(
                "SELECT channel, state, outcome FROM deliveries WHERE notification_id = ?",
                (notification_id,)).fetchall()
        return {str(channel): (str(state), outcome) for channel, state, outcome in rows}

    @staticmethod
    def _visible(viewer: Viewer) -> tuple[str, list[object]]:
        """The SQL condition of ``visible_to``: always within the viewer's department."""
        return visible_condition(viewer, "?")

    def list(
        self, viewer: Viewer, *, unread: bool | None = None, severity: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[InboxItem], int, int]:
        """(page of notifications, total matching, unread count); unread first, newest first."""
        clause, params = list_condition(viewer, unread, severity, "?")
        with self._lock:
            rows = self._db.execute(
                f"SELECT body, read_at, feedback, feedback_reason FROM notifications "  # noqa: S608
                f"WHERE {clause} ORDER BY read_at IS NOT NULL, created DESC, id "
                "LIMIT ? OFFSET ?", [*params, limit, offset],
            ).fetchall()
            total = self._db.execute(
                f"SELECT COUNT(*) FROM notifications WHERE {clause}", params  # noqa: S608
            ).fetchone()[0]
            base, base_params = self._visible(viewer)
            unread_count = self._db.execute(
                f"SELECT COUNT(*) FROM notifications WHERE {base} AND read_at IS NULL",  # noqa: S608
                base_params,
            ).fetchone()[0]
        return [self._item(row) for row in rows], int(total), int(unread_count)

    def get(self, viewer: Viewer, notification_id: str) -> InboxItem | None:
        """One notification the viewer may see, or None."""
        where, params = self._visible(viewer)
        with self._lock:
            row = self._db.execute(
                f"SELECT body, read_at, feedback, feedback_reason FROM notifications "  # noqa: S608
                f"WHERE id = ? AND {where}", [notification_id, *params],
            ).fetchone()
        return self._item(row) if row else None

    def mark_read(self, viewer: Viewer, notification_id: str) -> bool:
        """Mark one notification read (an earlier read time is kept); False when not visible."""
        where, params = self._visible(viewer)
        with self._lock:
            found = self._db.execute(
                f"SELECT 1 FROM notifications WHERE id = ? AND {where}",  # noqa: S608
                [notification_id, *params],
            ).fetchone()
            if found:
                self._db.execute(
                    "UPDATE notifications SET read_at = COALESCE(read_at, ?) WHERE id = ?",
                    (_now(), notification_id))
        return found is not None

    def mark_all_read(self, viewer: Viewer) -> int:
        """Mark every unread notification the viewer sees read; returns how many."""
        where, params = self._visible(viewer)
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE notifications SET read_at = ? WHERE read_at IS NULL AND {where}",  # noqa: S608
                [_now(), *params],
            )
        return int(cursor.rowcount)

    def set_feedback(
        self, viewer: Viewer, notification_id: str, useful: bool, reason: str | None
    ) -> str | None:
        """Record feedback; returns the rule id, or None when the viewer cannot see it."""
        where, params = self._visible(viewer)
        with self._lock:
            row = self._db.execute(
                f"SELECT rule FROM notifications WHERE id = ? AND {where}",  # noqa: S608
                [notification_id, *params],
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE notifications SET feedback = ?, feedback_reason = ?, feedback_at = ? "
                "WHERE id = ?",
                ("useful" if useful else "not_useful", reason, _now(), notification_id),
            )
        return str(row[0])

    def feedback_counts(self) -> dict[tuple[str, str], int]:
        """(rule, useful|not_useful) -> count, for operators."""
        with self._lock:
            rows = self._db.execute(
                "SELECT rule, feedback, COUNT(*) FROM notifications WHERE feedback IS NOT NULL "
                "GROUP BY rule, feedback").fetchall()
        return {(rule, verdict): int(count) for rule, verdict, count in rows}

    def expire(self, retention: dt.timedelta) -> int:
        """Delete read notifications read longer ago than ``retention``.

        A notification with a delivery still pending is kept (its re-dispatch
        needs the body); settled deliveries go with their notification.
        """
        cutoff = (dt.datetime.now(dt.UTC) - retention).isoformat(timespec="seconds")
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM notifications WHERE read_at IS NOT NULL AND read_at < ? AND id NOT "
                "IN (SELECT notification_id FROM deliveries WHERE state = 'pending')", (cutoff,))
            removed = int(cursor.rowcount)
            self._db.execute(
                "DELETE FROM deliveries WHERE state = 'settled' AND notification_id NOT IN "
                "(SELECT id FROM notifications)")
        return removed

    @staticmethod
    def _item(row: tuple[bytes, str | None, str | None, str | None]) -> InboxItem:
        body: dict[str, object] = orjson.loads(row[0])
        return InboxItem(body, row[1], row[2], row[3])

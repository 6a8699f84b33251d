"""The soak's latency probe: when a notification becomes visible in serve's inbox database.

Definition. A notification is *visible* once the inbox consumer of `advisering
serve` has committed it to its SQLite database (the transaction after which
every inbox API call and the live page can show it). A thread of the
benchmark reads the database (read-only; WAL lets it read beside the writer)
every ``poll`` seconds for rows added since its last look, and stamps each new
row with the time it saw it. The latency of a notification is that stamp
minus the time the ingest's 202 for its triggering event (``trigger.event_id``)
arrived at the benchmark's client. The poll interval is the resolution: a
figure is late by up to ``poll`` seconds (0.05 s by default, half that on
average). The row's own ``received`` column only has whole seconds.

A notification seen before its trigger's 202 was recorded (the client's
thread had not yet handled the answer) is matched when the 202 arrives and
counted as ``seen_before_ack`` with latency 0. Notifications whose trigger
the benchmark never acknowledged are counted as ``unmatched``.

Where the time goes: a notification's ``created`` is the worker's clock (ms)
when the engine made it, so each latency splits into 202 -> created (the
event on case-events, both worker hops, the engine) and created -> visible
(the notifications topic, serve's inbox consumer, the SQLite commit), kept
for the whole run (:meth:`InboxWatch.parts`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from pathlib import Path

import orjson

#: Seconds a notification may wait for its trigger's 202 before it counts as unmatched.
MATCH_GRACE = 120.0


class InboxWatch:
    """Reads new inbox rows in a thread; hands out the latencies seen since the last call."""

    def __init__(self, db_path: Path, acks: dict[str, float], poll: float = 0.05) -> None:
        self.db_path = db_path
        self.acks = acks
        self.poll = poll
        self.seen = 0  # notifications seen in the inbox
        self.unmatched = 0
        self.seen_before_ack = 0
        self.errors: list[str] = []
        self._last_rowid = 0
        self._window: list[float] = []
        self._all: list[float] = []
        self._parts: list[tuple[float, float]] = []  # (202 -> created, created -> visible)
        self._pending: dict[str, list[float]] = {}  # trigger id -> times seen, awaiting its 202
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-inbox-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def take_window(self) -> list[float]:
        """Latencies (seconds) of the notifications seen since the previous call."""
        with self._lock:
            window, self._window = self._window, []
        return window

    def all_latencies(self) -> list[float]:
        with self._lock:
            return list(self._all)

    def parts(self) -> tuple[list[float], list[float]]:
        """Over the run: (202 -> created by the worker, created -> visible in the inbox), s."""
        with self._lock:
            return [a for a, _ in self._parts], [b for _, b in self._parts]

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        while not self._stop.wait(self.poll):
            try:
                if db is None:
                    if not self.db_path.exists():
                        continue
                    db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
                self.read_new(db)
            except sqlite3.Error as exc:  # e.g. the table not created yet: try again
                if len(self.errors) < 5:
                    self.errors.append(str(exc))
        if db is not None:
            db.close()

    def read_new(self, db: sqlite3.Connection) -> int:
        """Stamp the rows added since the last look; returns how many there were."""
        rows = db.execute("SELECT rowid, body FROM notifications WHERE rowid > ? "
                          "ORDER BY rowid LIMIT 5000", (self._last_rowid,)).fetchall()
        seen_at = time.time()
        found: list[float] = []
        for rowid, body in rows:
            self._last_rowid = max(self._last_rowid, int(rowid))
            raw = orjson.loads(body)
            trigger = str(raw.get("trigger", {}).get("event_id", ""))
            acked = self.acks.get(trigger)
            if acked is None:
                self._pending.setdefault(trigger, []).append(seen_at)
                continue
            found.append(max(0.0, seen_at - acked))
            created = created_at(raw.get("created"))
            if created is not None:
                self._parts.append((created - acked, seen_at - created))
        found.extend(self._match_pending(seen_at))
        self.seen += len(rows)
        with self._lock:
            self._window.extend(found)
            self._all.extend(found)
        return len(rows)

    def _match_pending(self, now: float) -> list[float]:
        """Notifications seen before their trigger's 202: matched (latency 0) or given up."""
        found: list[float] = []
        for trigger in list(self._pending):
            times = self._pending[trigger]
            if trigger in self.acks:
                found.extend(0.0 for _ in times)
                self.seen_before_ack += len(times)
                del self._pending[trigger]
            elif now - times[0] > MATCH_GRACE:
                self.unmatched += len(times)
                del self._pending[trigger]
        return found

    def flush_pending(self) -> None:
        """At the end: whatever still waits for a 202 is unmatched."""
        self.unmatched += sum(len(times) for times in self._pending.values())
        self._pending.clear()


def created_at(value: object) -> float | None:
    """A notification's ``created`` (ISO 8601 with an offset) as epoch seconds, or None."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None

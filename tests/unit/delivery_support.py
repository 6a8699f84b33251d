"""Shared pieces of the delivery tests: notifications, a dead-letter list, real local servers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import orjson
from aiosmtpd.controller import Controller

from advisering.engine.notification import Notification
from tests.unit.builders import CITIZEN_A


def notification(
    nid: str = "n-1", *, caseworker: str | None = "bf-0042", unit: str = "bf-syd",
    department: str = "boern-familie", message: str = "Borgeren i din sag DUBU-1 er sanktioneret.",
    severity: str = "high",
) -> Notification:
    """A notification as the engine emits it, with a real pseudonym in it."""
    return Notification.from_json({
        "id": nid,
        "rule": "sanktion-til-boernesag",
        "title": "Sanktion i jobcentret for en forælder med en åben børnesag",
        "severity": severity,
        "recipient": {"caseworker": caseworker, "unit": unit, "department": department},
        "related_case": {"id": "DUBU-2025-0815", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": "ev-1", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": "2026-11-29T09:12:00+01:00"},
        "citizen": CITIZEN_A,
        "message": message,
        "legal_basis": "Barnets lov (underretning og tidlig indsats)",
        "created": "2026-11-29T09:12:01+01:00",
    })


@dataclass
class DeadLetters:
    """A dead-letter sink that keeps what it is given."""

    records: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def __call__(self, key: bytes, value: bytes) -> None:
        self.records.append((key, value))

    def values(self) -> list[dict[str, Any]]:
        return [orjson.loads(value) for _, value in self.records]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` on the event loop until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@dataclass
class Received:
    """One e-mail as the SMTP server took it."""

    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        content: str = body.get_content()
        return content


class SmtpInbox:
    """aiosmtpd handler: keeps every message it is given (from the server's thread)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            raw = bytes(envelope.original_content)
            self.received.append(Received(list(envelope.rcpt_tos), raw))
        return "250 OK"

    def count(self) -> int:
        with self._lock:
            return len(self.received)


@contextmanager
def smtp_server(**options: Any) -> Iterator[tuple[SmtpInbox, int]]:
    """A real SMTP server (aiosmtpd) on a free local port, and what it received.

    ``options`` go to aiosmtpd's Controller (``ssl_context`` for SMTPS,
    ``tls_context`` and ``require_starttls`` for STARTTLS, ``authenticator``).
    """
    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class Ticker:
    """A stand-in for asyncio.sleep: each ``tick()`` lets one sleeper go."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self._ticks: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        await self._ticks.get()

    def tick(self) -> None:
        self._ticks.put_nowait(None)

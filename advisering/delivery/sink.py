"""What the delivery channels share: the dead-letter sink and its minimal record.

A notification that cannot be delivered is not dropped: it becomes a dead
letter that names the notification (id, rule, recipient) so an operator can
find it again on ``advisering.notifications`` or in the inbox. The record never
holds the message text or the citizen pseudonym (data minimisation: the dead
letters topic is read by operators, not by the caseworkers the text was for).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

DeadLetterSink = Callable[[bytes, bytes], Awaitable[None]]
"""``async (key, value) -> None``, e.g. producing to ``advisering.dead-letters``."""

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); injectable for tests."""

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep`` or a test's stand-in."""

DELIVERY_SOURCE = "advisering.delivery"
RECIPIENT_FIELDS = ("caseworker", "unit", "department")


class DeliveryClosedError(RuntimeError):
    """``deliver`` was called on a channel after ``close``."""


def recipient_key(recipient: Mapping[str, Any]) -> str:
    """The caseworker, or ``unit:<unit>`` without one (the engine's recipient key)."""
    caseworker = recipient.get("caseworker")
    if isinstance(caseworker, str) and caseworker:
        return caseworker
    return f"unit:{recipient.get('unit')}"


def delivery_dead_letter(
    reason: str, channel: str, notification: Mapping[str, Any], *, attempts: int,
    last_error: str, failed_at: float,
) -> tuple[bytes, bytes]:
    """(key, value) of the dead letter for an undelivered notification; key is the channel."""
    recipient = notification.get("recipient")
    record = {
        "reason": reason,
        "source": DELIVERY_SOURCE,
        "channel": channel,
        "notification_id": notification.get("id"),
        "rule": notification.get("rule"),
        "recipient": (
            {k: recipient.get(k) for k in RECIPIENT_FIELDS}
            if isinstance(recipient, Mapping) else None
        ),
        "attempts": attempts,
        "last_error": last_error,
        "received": dt.datetime.fromtimestamp(failed_at, dt.UTC).isoformat(),
    }
    return channel.encode(), orjson.dumps(record)

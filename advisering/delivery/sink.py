"""What the delivery channels share: the dead-letter sink and its minimal record.

A notification that cannot be delivered is not dropped: it becomes a dead
letter that names the notification (id, rule, recipient) so an operator can
find it again on ``advisering.notifications`` or in the inbox. The record never
holds the message text or the citizen pseudonym (data minimisation: the dead
letters topic is read by operators, not by the caseworkers the text was for).

A channel reports every notification that reaches a final state (delivered, or
handed to the dead-letter sink) through its ``on_settled`` hook, so that a
durable caller (the inbox's delivery table) knows which deliveries it must
redo after a crash. A notification the dead-letter sink did not take is not
settled: it stays due and is tried again at the next start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson
import structlog

from advisering.engine.notification import Recipient
from advisering.log import get_logger

log = get_logger(__name__)

DeadLetterSink = Callable[[bytes, bytes], Awaitable[None]]
"""``async (key, value) -> None``, e.g. producing to ``advisering.dead-letters``."""

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); injectable for tests."""

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep`` or a test's stand-in."""

SettledHook = Callable[[str, str, str], Awaitable[None]]
"""``async (notification_id, channel, outcome) -> None``, awaited once per final state.

Asynchronous so that the hook may write to a database in a thread without
blocking the event loop; an exception in it is logged, never fatal to a lane.
"""

DELIVERED = "delivered"
DEAD_LETTERED = "dead_lettered"
DROPPED = "dropped"  # undeliverable and no dead-letter sink configured

DELIVERY_SOURCE = "advisering.delivery"


class Undelivered(Protocol):
    """What a dead letter names: a ``Notification``, or what an e-mail digest kept of one."""

    @property
    def id(self) -> str:
        """The notification id."""

    @property
    def rule(self) -> str:
        """The rule that made it."""

    @property
    def recipient(self) -> Recipient:
        """Whom it was for."""


class DeliveryClosedError(RuntimeError):
    """``deliver`` was called on a channel after ``close``."""


async def no_settled_hook(notification_id: str, channel: str, outcome: str) -> None:
    """The default ``on_settled``: a caller without durable state needs no report."""
    del notification_id, channel, outcome


async def report_settled(
    hook: SettledHook, notification_id: str, channel: str, outcome: str
) -> None:
    """Call ``hook``; its failure is logged (the delivery itself already happened)."""
    try:
        await hook(notification_id, channel, outcome)
    except Exception as exc:  # noqa: BLE001 - the delivery happened; a failed report only logs
        log.error("delivery_settle_report_failed", channel=channel,
                  notification_id=notification_id, outcome=outcome, error=type(exc).__name__)


def delivery_dead_letter(
    reason: str, channel: str, notification: Undelivered, *, attempts: int,
    last_error: str, failed_at: float,
) -> tuple[bytes, bytes]:
    """(key, value) of the dead letter for an undelivered notification; key is the channel."""
    recipient = notification.recipient
    record = {
        "reason": reason,
        "source": DELIVERY_SOURCE,
        "channel": channel,
        "notification_id": notification.id,
        "rule": notification.rule,
        "recipient": {"caseworker": recipient.caseworker, "unit": recipient.unit,
                      "department": recipient.department},
        "attempts": attempts,
        "last_error": last_error,
        "received": dt.datetime.fromtimestamp(failed_at, dt.UTC).isoformat(),
    }
    return channel.encode(), orjson.dumps(record)


async def dead_letter(
    channel: str, notification: Undelivered, *, reason: str,
    sink: DeadLetterSink | None, on_settled: SettledHook, clock: Clock, attempts: int,
    last_error: str, logger: structlog.stdlib.BoundLogger, failed_event: str,
) -> None:
    """Hand an undelivered notification to ``sink``; report it settled once it is there.

    Without a sink it is settled as dropped. When the sink fails, ``failed_event``
    is logged on the channel's ``logger`` and the notification stays unsettled: a
    durable caller still has it due and sends it again.
    """
    notification_id = notification.id
    if sink is None:
        await report_settled(on_settled, notification_id, channel, DROPPED)
        return
    key, value = delivery_dead_letter(
        reason, channel, notification, attempts=attempts, last_error=last_error,
        failed_at=clock(),
    )
    try:
        await sink(key, value)
    except Exception as exc:  # noqa: BLE001 - any sink failure leaves it unsettled, sent again
        logger.error(failed_event, channel=channel, notification_id=notification_id,
                     error=type(exc).__name__)
        return
    await report_settled(on_settled, notification_id, channel, DEAD_LETTERED)

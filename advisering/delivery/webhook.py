"""Signed webhook delivery to case systems, one lane per recipient.

Each recipient (caseworker, or unit without one) has its own queue and worker
task, so an endpoint that is slow or down for one recipient never holds up
another, and ``deliver`` never waits for the network. A lane's worker exits
when its queue is empty, so idle recipients cost nothing. Within a lane the
order of notifications is kept.

Every attempt of one notification carries the same body and the same
``Idempotency-Key`` (the notification id), so the receiver can drop the
duplicates that retries and the bus's at-least-once processing produce. The
timestamp and body are signed with HMAC-SHA256 over ``<timestamp>.<body>``
(``X-Advisering-Signature: sha256=<hex>``, ``X-Advisering-Timestamp``) under
the channel's secret; the citizen pseudonym is left out of the body
unless the channel sets ``include_citizen`` (the receiver knows the citizen
through its own case, ``related_case``).

A notification reaches a final state when the receiver accepted it or when it
was handed to the dead-letter sink; only then is ``on_settled`` called. A
durable caller closes with ``dead_letter_rest=False``: what is still queued
then is neither dead-lettered nor settled, and the caller sends it again at its
next start (same body, same ``Idempotency-Key``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

import aiohttp
import orjson

from advisering import metrics
from advisering.delivery.config import WebhookConfig
from advisering.delivery.sink import (
    DELIVERED,
    Clock,
    DeadLetterSink,
    DeliveryClosedError,
    SettledHook,
    Sleep,
    dead_letter,
    no_settled_hook,
    report_settled,
)
from advisering.engine.notification import Notification
from advisering.log import get_logger

log = get_logger(__name__)

REASON = "webhook_failed"
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


@dataclass
class _Pending:
    notification: Notification
    attempts: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class _Answer:
    delivered: bool
    retryable: bool
    error: str = ""
    retry_after: float | None = None


@dataclass
class _Lanes:
    queues: dict[str, deque[_Pending]] = field(default_factory=dict)
    workers: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class WebhookDelivery:
    """Delivers notifications of one channel to its webhook, with retries and dead letters."""

    def __init__(
        self, name: str, config: WebhookConfig, dead_letter_sink: DeadLetterSink, *,
        session: aiohttp.ClientSession | None = None, clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep, jitter: Callable[[], float] = random.random,
        on_settled: SettledHook = no_settled_hook,
    ) -> None:
        self.name = name
        self.config = config
        self._sink = dead_letter_sink
        self._on_settled = on_settled
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._secret = config.secret.get_secret_value().encode()
        self._url = str(config.url)
        self._lanes = _Lanes()
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        """Open the HTTP session (also done on the first delivery)."""
        self._ensure_session()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "advisering-webhook"}, raise_for_status=False,
            )
        return self._session

    def pending(self) -> int:
        """Notifications queued or in flight, over all recipients."""
        return sum(len(q) for q in self._lanes.queues.values())

    async def deliver(self, notification: Notification) -> None:
        """Queue one notification for its recipient's lane and return at once."""
        if self._closing:
            raise DeliveryClosedError(f"webhook channel {self.name} is closed")
        key = notification.recipient.key
        queue = self._lanes.queues.setdefault(key, deque())
        item = _Pending(notification)
        if len(queue) >= self.config.max_pending:
            # A dead endpoint must not grow memory without bound: beyond the
            # lane's limit, new notifications go straight to the dead letters.
            item.last_error = "queue_full"
            metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            log.warning("webhook_queue_full", channel=self.name,
                        notification_id=item.notification.id)
            self._spawn(self._dead_letter(item))
            return
        queue.append(item)
        if key not in self._lanes.workers:
            self._lanes.workers[key] = asyncio.create_task(self._drain(key))

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _drain(self, key: str) -> None:
        """Work off one recipient's queue in order; exit when it is empty."""
        queue = self._lanes.queues[key]
        try:
            while queue:
                # The item stays queued while in flight, so close() still sees it.
                item = queue[0]
                try:
                    await self._deliver_one(item)
                except Exception as exc:  # noqa: BLE001 - a bug must not wedge the lane on one item
                    item.last_error = type(exc).__name__
                    metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
                    log.error("webhook_delivery_crashed", channel=self.name,
                              notification_id=item.notification.id, error=item.last_error)
                    await self._dead_letter(item)
                queue.popleft()
        finally:
            self._lanes.workers.pop(key, None)
            if not queue and self._lanes.queues.get(key) is queue:
                del self._lanes.queues[key]

    async def _deliver_one(self, item: _Pending) -> None:
        notification = item.notification
        body = notification.encode() if self.config.include_citizen else orjson.dumps({
            k: v for k, v in notification.to_json().items() if k != "citizen"
        })
        idempotency_key = notification.id
        context = {"channel": self.name, "notification_id": idempotency_key,
                   "rule": notification.rule}
        while item.attempts < self.config.max_attempts:
            item.attempts += 1
            answer = await self._attempt(body, idempotency_key)
            if answer.delivered:
                metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
                log.info("webhook_delivered", attempts=item.attempts, **context)
                await report_settled(self._on_settled, idempotency_key, self.name, DELIVERED)
                return
            item.last_error = answer.error
            if not answer.retryable or item.attempts >= self.config.max_attempts:
                break
            delay = self._backoff(item.attempts, answer.retry_after)
            metrics.WEBHOOK_DELIVERIES.labels("retried").inc()
            log.info("webhook_retry", attempts=item.attempts, error=answer.error,
                     delay=round(delay, 3), **context)
            await self._sleep(delay)
        metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
        log.warning("webhook_failed", attempts=item.attempts, error=item.last_error, **context)
        await self._dead_letter(item)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never shorter than a Retry-After (capped)."""
        growth: float = 2.0 ** (attempt - 1)
        ceiling = min(self.config.max_backoff, self.config.initial_backoff * growth)
        delay = self._jitter() * ceiling
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.config.max_backoff))
        return delay

    def _headers(self, body: bytes, idempotency_key: str) -> dict[str, str]:
        # The timestamp is signed with the body (as "<timestamp>.<body>"), so a
        # receiver can refuse a replayed old request as well as a forged one.
        timestamp = str(int(self._clock()))
        signature = hmac.new(self._secret, timestamp.encode() + b"." + body,
                             hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "X-Advisering-Signature": f"sha256={signature}",
            "X-Advisering-Timestamp": timestamp,
        }

    async def _attempt(self, body: bytes, idempotency_key: str) -> _Answer:
        """One POST; the answer says whether it was delivered and whether to retry."""
        session = self._ensure_session()
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        started = time.perf_counter()
        try:
            async with session.post(
                self._url, data=body, headers=self._headers(body, idempotency_key),
                timeout=timeout, allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return _Answer(delivered=False, retryable=True, error="timeout")
        except aiohttp.ClientError as exc:
            # The class name only: messages can carry the URL (and any token in it).
            return _Answer(delivered=False, retryable=True, error=type(exc).__name__)
        finally:
            metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started)
        if 200 <= status < 300:
            return _Answer(delivered=True, retryable=False)
        # Redirects are not followed (the body must not go to another host) and
        # other 4xx are the receiver refusing this notification: retrying won't help.
        retryable = status >= 500 or status in RETRYABLE_CLIENT_STATUSES
        return _Answer(delivered=False, retryable=retryable, error=f"http_{status}",
                       retry_after=retry_after)

    async def _dead_letter(self, item: _Pending) -> None:
        await dead_letter(
            self.name, item.notification, reason=REASON, sink=self._sink,
            on_settled=self._on_settled, clock=self._clock, attempts=item.attempts,
            last_error=item.last_error, logger=log, failed_event="webhook_dead_letter_failed",
        )

    async def close(self, timeout: float = 10.0, *, dead_letter_rest: bool = True) -> None:
        """Stop taking notifications, wait up to ``timeout`` for the lanes, dead-letter the rest.

        With ``dead_letter_rest=False`` the rest is only counted and logged: a
        caller that keeps its own record of unsettled deliveries redelivers it
        after the restart instead of turning a planned restart into dead letters.
        """
        self._closing = True
        workers = list(self._lanes.workers.values())
        if workers:
            _, unfinished = await asyncio.wait(workers, timeout=timeout)
            for task in unfinished:
                task.cancel()
            for task in unfinished:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        leftovers = [item for queue in self._lanes.queues.values() for item in queue]
        self._lanes.queues.clear()
        if not dead_letter_rest:
            if leftovers:
                log.info("webhook_closed_unsettled", channel=self.name, count=len(leftovers))
            leftovers = []
        for item in leftovers:
            item.last_error = item.last_error or "shutdown"
            metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            await self._dead_letter(item)
        if leftovers:
            log.warning("webhook_closed_undelivered", channel=self.name, count=len(leftovers))
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored: backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None

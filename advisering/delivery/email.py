"""E-mail digests: one message per recipient and interval, not one per notification.

Caseworkers asked for fewer e-mails, so notifications are collected per
recipient (the caseworker, or the unit without one) and sent together every
``interval`` seconds, and on ``flush()`` / ``close()``. E-mail leaves the
municipality's systems more easily than the inbox, so a digest holds only what
the notification already discloses to this recipient: the message, the rule's
title, the legal basis, the severity and the recipient's own related case id.
Never the citizen pseudonym, nothing else about the citizen.

smtplib runs in a worker thread (``asyncio.to_thread``) rather than adding
aiosmtplib as a runtime dependency: a channel sends at most one batch per
interval over one connection, so a thread is cheap and the standard library's
SMTP client (STARTTLS, AUTH) is well known to operators.

``on_settled`` is called per notification of a digest when the relay took it
(delivered) or when it was dead-lettered. On ``close(dead_letter_rest=False)``
a last digest the relay refuses stays unsettled, for a durable caller to send
again after its restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from advisering import metrics
from advisering.delivery.config import EmailConfig
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
from advisering.engine.notification import Notification, Recipient
from advisering.labels import severity_name
from advisering.log import get_logger

log = get_logger(__name__)

REASON = "email_failed"
SEVERITY_ORDER = {"high": 0, "normal": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """Only what a digest may show of a notification; the pseudonym never enters the digest."""

    id: str
    rule: str
    title: str
    severity: str
    message: str
    legal_basis: str
    recipient: Recipient
    created: str
    related_case: str
    """The id of the recipient's own case."""

    @classmethod
    def of(cls, notification: Notification) -> DigestEntry:
        """The part of ``notification`` a digest keeps."""
        n = notification
        return cls(n.id, n.rule, n.title, n.severity, n.message, n.legal_basis, n.recipient,
                   n.created, n.related_case.id)


@dataclass
class _Digest:
    address: str
    notifications: dict[str, DigestEntry] = field(default_factory=dict)  # by id
    failures: int = 0
    last_error: str = ""


def _count_phrase(count: int) -> str:
    return f"{count} {'nyt' if count == 1 else 'nye'} advis"


def subject(count: int) -> str:
    """Danish subject line: '1 nyt advis fra advisering', '3 nye advis fra advisering'."""
    return f"{_count_phrase(count)} fra advisering"


def digest_body(notifications: list[DigestEntry]) -> str:
    """Plain-text body: per notification its message and its *why*, high severity first."""
    ordered = sorted(notifications, key=lambda n: (SEVERITY_ORDER.get(n.severity, 3), n.created))
    lines = [f"Du har {_count_phrase(len(ordered))}.", ""]
    for number, n in enumerate(ordered, start=1):
        lines.append(f"{number}. {n.title or n.rule}")
        lines.append(f"   {n.message}")
        lines.append(f"   Alvorlighed: {severity_name(n.severity)}")
        if n.related_case:
            lines.append(f"   Din sag: {n.related_case}")
        lines.append(f"   Hjemmel: {n.legal_basis}")
        lines.append("")
    lines.append("Advis er beslutningsstøtte: de ændrer ikke sagen.")
    lines.append("Denne e-mail er sendt automatisk af advisering; svar ikke på den.")
    return "\n".join(lines) + "\n"


class EmailDigest:
    """Collects one channel's notifications per recipient and mails them as digests."""

    def __init__(
        self, name: str, config: EmailConfig, dead_letter_sink: DeadLetterSink | None = None,
        *, clock: Clock = time.time, sleep: Sleep = asyncio.sleep,
        on_settled: SettledHook = no_settled_hook,
    ) -> None:
        self.name = name
        self.config = config
        self._sink = dead_letter_sink
        self._on_settled = on_settled
        self._dead_letter_rest = True
        self._clock = clock
        self._sleep = sleep
        self._digests: dict[str, _Digest] = {}
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._closing = False

    def pending(self) -> int:
        """Notifications waiting for the next digest, over all recipients."""
        return sum(len(d.notifications) for d in self._digests.values())

    async def start(self) -> None:
        """Start the interval timer."""
        if self._timer is None:
            self._timer = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await self._sleep(self.config.interval)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the timer must survive a bug in one flush
                log.error("email_flush_crashed", channel=self.name, error=type(exc).__name__)

    async def deliver(self, notification: Notification) -> None:
        """Add a notification to its recipient's next digest (a repeated id is kept once)."""
        if self._closing:
            raise DeliveryClosedError(f"e-mail channel {self.name} is closed")
        entry = DigestEntry.of(notification)
        address = self.config.address_for(entry.recipient)
        if address is None:
            metrics.EMAIL_DIGESTS.labels("failed").inc()
            log.warning("email_unaddressable", channel=self.name, notification_id=entry.id)
            await self._dead_letter([entry], attempts=0, last_error="no_address")
            return
        digest = self._digests.setdefault(entry.recipient.key, _Digest(address))
        digest.notifications.setdefault(entry.id, entry)

    async def flush(self) -> int:
        """Send every waiting digest now; returns how many e-mails the relay took."""
        async with self._lock:
            return await self._flush(final=self._closing)

    async def _flush(self, *, final: bool) -> int:
        batch, self._digests = self._digests, {}
        if not batch:
            return 0
        digests = list(batch.items())
        messages = [self._message(d) for _, d in digests]
        errors = await asyncio.to_thread(self._send_all, messages)
        sent = 0
        for (key, digest), error in zip(digests, errors, strict=True):
            count = len(digest.notifications)
            if error is None:
                sent += 1
                metrics.EMAIL_DIGESTS.labels("sent").inc()
                log.info("email_digest_sent", channel=self.name, notifications=count)
                for nid in digest.notifications:
                    await report_settled(self._on_settled, nid, self.name, DELIVERED)
                continue
            digest.failures += 1
            digest.last_error = error
            if final and not self._dead_letter_rest:
                log.info("email_closed_unsettled", channel=self.name, notifications=count,
                         attempts=digest.failures, error=error)
                continue
            if final or digest.failures >= self.config.max_attempts:
                metrics.EMAIL_DIGESTS.labels("failed").inc()
                log.warning("email_digest_failed", channel=self.name, notifications=count,
                            attempts=digest.failures, error=error)
                await self._dead_letter(list(digest.notifications.values()),
                                        attempts=digest.failures, last_error=error)
                continue
            metrics.EMAIL_DIGESTS.labels("retried").inc()
            log.info("email_digest_retry", channel=self.name, notifications=count,
                     attempts=digest.failures, error=error)
            self._requeue(key, digest)
        return sent

    def _requeue(self, key: str, digest: _Digest) -> None:
        """Put a failed digest back in front of what arrived for the recipient meanwhile."""
        newer = self._digests.get(key)
        if newer is not None:
            for nid, n in newer.notifications.items():
                digest.notifications.setdefault(nid, n)
        self._digests[key] = digest

    def _message(self, digest: _Digest) -> EmailMessage:
        notifications = list(digest.notifications.values())
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = digest.address
        message["Subject"] = subject(len(notifications))
        message["Date"] = format_datetime(dt.datetime.fromtimestamp(self._clock(), dt.UTC))
        message["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        message.set_content(digest_body(notifications))
        return message

    def _send_all(self, messages: list[EmailMessage]) -> list[str | None]:
        """Send over one SMTP connection (in a thread); per message None or an error code."""
        results: list[str | None] = []
        config = self.config
        try:
            with _connect(config) as smtp:
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.username is not None and config.password is not None:
                    smtp.login(config.username, config.password.get_secret_value())
                for message in messages:
                    try:
                        smtp.send_message(message)
                        results.append(None)
                    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                            smtplib.SMTPDataError) as exc:
                        results.append(_describe(exc))
        except (OSError, smtplib.SMTPException) as exc:
            # Connection, TLS or login failed, or the server went away mid-batch.
            results.extend([_describe(exc)] * (len(messages) - len(results)))
        return results

    async def _dead_letter(self, notifications: list[DigestEntry], *, attempts: int,
                           last_error: str) -> None:
        for notification in notifications:
            await dead_letter(
                self.name, notification, reason=REASON, sink=self._sink,
                on_settled=self._on_settled, clock=self._clock, attempts=attempts,
                last_error=last_error, logger=log, failed_event="email_dead_letter_failed",
            )

    async def close(self, *, dead_letter_rest: bool = True) -> None:
        """Stop the timer and send what is waiting; what cannot be sent is dead-lettered.

        With ``dead_letter_rest=False`` what cannot be sent now stays unsettled
        (the caller keeps it due and sends it again after its restart).
        """
        self._closing = True
        self._dead_letter_rest = dead_letter_rest
        if self._timer is not None:
            # Under the lock the timer is never mid-flush, so cancelling it loses nothing.
            async with self._lock:
                self._timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._timer
                self._timer = None
        await self.flush()


def _connect(config: EmailConfig) -> smtplib.SMTP:
    """The relay's connection: TLS from the first byte with ``smtps``, else plain text."""
    if config.smtps:
        return smtplib.SMTP_SSL(config.smtp_host, config.port, timeout=config.timeout,
                                context=ssl.create_default_context())
    return smtplib.SMTP(config.smtp_host, config.port, timeout=config.timeout)


def _describe(exc: BaseException) -> str:
    """An error code for logs and dead letters: class and SMTP code, never server text."""
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}:{code}" if code else type(exc).__name__

"""E-mail digests against a real local SMTP server (aiosmtpd): grouping, content, failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from advisering.delivery.config import EmailConfig
from advisering.delivery.email import EmailDigest
from tests.unit.delivery_support import (
    DeadLetters,
    SmtpInbox,
    Ticker,
    free_port,
    notification,
    smtp_server,
    wait_until,
)

TEXT_1 = "Borgeren i din sag DUBU-2025-0815 har fået en sanktion i jobcentret (29.11.2026)."
TEXT_2 = "Borgeren i din sag DUBU-2025-0815 er udeblevet fra en samtale i jobcentret."


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpInbox, int]]:
    with smtp_server() as server:
        yield server


def _config(port: int, **overrides: Any) -> EmailConfig:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1", "smtp_port": port, "sender": "advis@kommune.example",
        "address": "{caseworker}@kommune.example", "unit_address": "{unit}@kommune.example",
        "interval": 900, "timeout": 5.0,
    }
    values.update(overrides)
    return EmailConfig.model_validate(values)


async def test_two_notifications_in_one_interval_make_one_email(
    smtp: tuple[SmtpInbox, int],
) -> None:
    """Two notifications for one caseworker give ONE e-mail with both texts and no pseudonym."""
    inbox, port = smtp
    ticker = Ticker()
    digest = EmailDigest("mail", _config(port), DeadLetters(), sleep=ticker.sleep)
    await digest.start()
    await digest.deliver(notification("n-1", message=TEXT_1))
    await digest.deliver(notification("n-2", message=TEXT_2, severity="normal"))
    await wait_until(lambda: ticker.requested == [900])
    assert inbox.count() == 0  # nothing before the interval is over
    ticker.tick()
    await wait_until(lambda: inbox.count() == 1)
    await digest.close()

    assert inbox.count() == 1
    mail = inbox.received[0]
    assert mail.rcpt_tos == ["bf-0042@kommune.example"]
    assert mail.message["Subject"] == "2 nye advis fra advisering"
    assert mail.message["From"] == "advis@kommune.example"
    text = mail.text
    assert TEXT_1 in text and TEXT_2 in text
    assert "Sanktion i jobcentret for en forælder med en åben børnesag" in text
    assert "Hjemmel: Barnets lov (underretning og tidlig indsats)" in text
    assert "Alvorlighed: høj" in text
    assert "DUBU-2025-0815" in text
    assert "ps1-" not in text
    assert b"ps1-" not in mail.raw
    assert "momentum" not in text  # nothing of the trigger beyond what the message says


async def test_two_caseworkers_get_one_email_each(smtp: tuple[SmtpInbox, int]) -> None:
    """Notifications for two caseworkers give two e-mails, each to the right address."""
    inbox, port = smtp
    digest = EmailDigest("mail", _config(port), DeadLetters())
    await digest.deliver(notification("n-1", caseworker="bf-0042", message=TEXT_1))
    await digest.deliver(notification("n-2", caseworker="bf-0099", message=TEXT_2))
    assert await digest.flush() == 2
    by_address = {mail.rcpt_tos[0]: mail for mail in inbox.received}
    assert sorted(by_address) == ["bf-0042@kommune.example", "bf-0099@kommune.example"]
    assert TEXT_1 in by_address["bf-0042@kommune.example"].text
    assert TEXT_2 not in by_address["bf-0042@kommune.example"].text
    assert TEXT_2 in by_address["bf-0099@kommune.example"].text
    assert by_address["bf-0099@kommune.example"].message["Subject"] == (
        "1 nyt advis fra advisering")
    await digest.close()


async def test_unit_without_caseworker_goes_to_unit_address(smtp: tuple[SmtpInbox, int]) -> None:
    """A notification without a caseworker goes to the unit's mailbox."""
    inbox, port = smtp
    digest = EmailDigest("mail", _config(port), DeadLetters())
    await digest.deliver(notification(caseworker=None, unit="hjemmepleje-vest"))
    await digest.close()  # close sends what is waiting
    assert [mail.rcpt_tos for mail in inbox.received] == [["hjemmepleje-vest@kommune.example"]]


async def test_repeated_notification_id_is_mailed_once(smtp: tuple[SmtpInbox, int]) -> None:
    """The bus may deliver a notification twice with one id; the digest lists it once."""
    inbox, port = smtp
    digest = EmailDigest("mail", _config(port), DeadLetters())
    await digest.deliver(notification("n-1", message=TEXT_1))
    await digest.deliver(notification("n-1", message=TEXT_1))
    await digest.flush()
    await digest.close()
    assert inbox.received[0].message["Subject"] == "1 nyt advis fra advisering"
    assert inbox.received[0].text.count(TEXT_1) == 1


async def test_unreachable_relay_retries_then_dead_letters() -> None:
    """With no SMTP server the digest is kept for max_attempts flushes, then dead-lettered."""
    sink = DeadLetters()
    digest = EmailDigest("mail", _config(free_port(), max_attempts=2), sink)
    await digest.deliver(notification("n-1", message=TEXT_1))
    assert await digest.flush() == 0
    assert digest.pending() == 1 and sink.records == []
    await digest.deliver(notification("n-2", message=TEXT_2))
    assert await digest.flush() == 0
    assert digest.pending() == 0
    records = sink.values()
    assert [r["notification_id"] for r in records] == ["n-1", "n-2"]
    assert records[0]["reason"] == "email_failed"
    assert records[0]["channel"] == "mail"
    assert all(b"ps1-" not in value for _, value in sink.records)
    assert all(TEXT_1.encode() not in value for _, value in sink.records)
    await digest.close()


async def test_unaddressable_recipient_is_dead_lettered() -> None:
    """Without unit_address, a unit-only notification cannot be addressed: dead letter."""
    sink = DeadLetters()
    digest = EmailDigest("mail", _config(free_port(), unit_address=None), sink)
    await digest.deliver(notification(caseworker=None))
    assert digest.pending() == 0
    assert sink.values()[0]["last_error"] == "no_address"
    await digest.close()

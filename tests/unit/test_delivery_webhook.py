"""Webhook delivery against a real local aiohttp receiver: retries, signatures, isolation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from advisering.delivery.config import WebhookConfig
from advisering.delivery.sink import DeliveryClosedError
from advisering.delivery.webhook import WebhookDelivery
from tests.unit.delivery_support import DeadLetters, free_port, notification, wait_until

SECRET = "test-secret-0123456789-0123456789abcdef"
Answer = Callable[[int, dict[str, Any]], Awaitable[web.StreamResponse]]


@dataclass
class Receiver:
    """A webhook endpoint whose answer per attempt the test decides."""

    answer: Answer
    attempts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.attempts.append((dict(request.headers), body))
        payload = orjson.loads(body)
        response = await self.answer(len(self.attempts), payload)
        if 200 <= response.status < 300:
            self.accepted.append(payload)
        return response


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async def ok(_attempt: int, _payload: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=200)

    state = Receiver(answer=ok)
    app = web.Application()
    app.router.add_post("/advis", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("/advis"))
    yield state
    await server.close()


def hang(receiver: Receiver) -> asyncio.Event:
    """Make ``receiver`` answer no attempt until the returned event is set."""
    release = asyncio.Event()

    async def hanging(_attempt: int, _payload: dict[str, Any]) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    receiver.answer = hanging
    return release


def _config(url: str, **overrides: Any) -> WebhookConfig:
    values: dict[str, Any] = {"url": url, "secret": SECRET, "max_attempts": 4,
                              "initial_backoff": 0.01, "max_backoff": 0.02, "timeout": 2.0}
    values.update(overrides)
    return WebhookConfig.model_validate(values)


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("advisering_webhook_deliveries_total",
                                     {"outcome": outcome}) or 0.0


async def test_retries_until_accepted_with_signed_idempotent_posts(receiver: Receiver) -> None:
    """500, 500, then 200: one accepted delivery, signed, one Idempotency-Key throughout."""
    async def flaky(attempt: int, _payload: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=500 if attempt <= 2 else 200)

    receiver.answer = flaky
    sink = DeadLetters()
    delivery = WebhookDelivery("fagsystem", _config(receiver.url), sink)
    retried_before = _count("retried")
    await delivery.deliver(notification("n-42"))
    await wait_until(lambda: len(receiver.accepted) == 1)
    await delivery.close()

    assert len(receiver.attempts) == 3
    assert len(receiver.accepted) == 1
    assert sink.records == []
    assert _count("retried") - retried_before == 2
    bodies = {body for _, body in receiver.attempts}
    assert len(bodies) == 1
    for headers, body in receiver.attempts:
        assert headers["Content-Type"] == "application/json"
        assert headers["Idempotency-Key"] == "n-42"
        signed = headers["X-Advisering-Timestamp"].encode() + b"." + body
        expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Advisering-Signature"], f"sha256={expected}")
        assert abs(int(headers["X-Advisering-Timestamp"]) - time.time()) < 60
    delivered = receiver.accepted[0]
    assert delivered["id"] == "n-42"
    assert delivered["message"] == notification().message
    assert "citizen" not in delivered  # the receiver knows the citizen by its own case


async def test_always_failing_endpoint_ends_in_dead_letters(receiver: Receiver) -> None:
    """A 500 on every try gives max_attempts tries, then a minimal webhook_failed dead letter."""
    async def broken(_attempt: int, _payload: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.answer = broken
    sink = DeadLetters()
    delivery = WebhookDelivery("fagsystem", _config(receiver.url, max_attempts=3), sink)
    await delivery.deliver(notification("n-7"))
    await wait_until(lambda: len(sink.records) == 1)
    await delivery.close()

    assert len(receiver.attempts) == 3
    key, value = sink.records[0]
    assert key == b"fagsystem"
    record = orjson.loads(value)
    assert record["reason"] == "webhook_failed"
    assert record["channel"] == "fagsystem"
    assert record["attempts"] == 3
    assert record["last_error"] == "http_500"
    assert record["notification_id"] == "n-7"
    assert record["rule"] == "sanktion-til-boernesag"
    assert record["recipient"]["caseworker"] == "bf-0042"
    assert b"ps1-" not in value
    assert notification().message.encode() not in value
    assert "message" not in record and "citizen" not in record


async def test_client_error_is_not_retried(receiver: Receiver) -> None:
    """A 400 is a permanent failure: one try, then the dead letters."""
    async def refuse(_attempt: int, _payload: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=400)

    receiver.answer = refuse
    sink = DeadLetters()
    delivery = WebhookDelivery("fagsystem", _config(receiver.url), sink)
    await delivery.deliver(notification())
    await wait_until(lambda: len(sink.records) == 1)
    await delivery.close()
    assert len(receiver.attempts) == 1
    assert sink.values()[0]["last_error"] == "http_400"
    assert sink.values()[0]["attempts"] == 1


async def test_429_and_408_are_retried(receiver: Receiver) -> None:
    """429 (with Retry-After) and 408 are temporary: the next try is accepted."""
    async def busy(attempt: int, _payload: dict[str, Any]) -> web.StreamResponse:
        if attempt == 1:
            return web.Response(status=429, headers={"Retry-After": "0"})
        return web.Response(status=408 if attempt == 2 else 204)

    receiver.answer = busy
    sink = DeadLetters()
    delivery = WebhookDelivery("fagsystem", _config(receiver.url), sink)
    await delivery.deliver(notification())
    await wait_until(lambda: len(receiver.accepted) == 1)
    await delivery.close()
    assert len(receiver.attempts) == 3
    assert sink.records == []


async def test_slow_recipient_does_not_delay_another(receiver: Receiver) -> None:
    """An endpoint hanging for recipient A does not delay recipient B, nor the caller."""
    release = asyncio.Event()

    async def slow_for_a(_attempt: int, payload: dict[str, Any]) -> web.StreamResponse:
        if payload["recipient"]["caseworker"] == "a-1":
            await release.wait()
        return web.Response(status=200)

    receiver.answer = slow_for_a
    sink = DeadLetters()
    delivery = WebhookDelivery("fagsystem", _config(receiver.url, timeout=5.0,
                                                    max_attempts=1), sink)
    started = time.monotonic()
    await delivery.deliver(notification("n-a", caseworker="a-1"))
    await delivery.deliver(notification("n-b", caseworker="b-1"))
    assert time.monotonic() - started < 0.1  # deliver only queues
    await wait_until(lambda: any(p["id"] == "n-b" for p in receiver.accepted), timeout=4.0)
    assert time.monotonic() - started < 1.0  # well before A's 5 s timeout
    assert [p["id"] for p in receiver.accepted] == ["n-b"]
    assert delivery.pending() == 1
    release.set()
    await wait_until(lambda: len(receiver.accepted) == 2)
    await delivery.close()
    assert sink.records == []


async def test_one_recipients_notifications_keep_their_order(receiver: Receiver) -> None:
    """Within one recipient's lane notifications are delivered in the order given."""
    sink = DeadLetters()
    delivery = WebhookDelivery("fagsystem", _config(receiver.url), sink)
    for number in range(5):
        await delivery.deliver(notification(f"n-{number}"))
    await wait_until(lambda: len(receiver.accepted) == 5)
    await delivery.close()
    assert [p["id"] for p in receiver.accepted] == [f"n-{n}" for n in range(5)]


async def test_refused_connection_is_retried_then_dead_lettered() -> None:
    """Nobody listening: every try fails to connect, and the dead letter says so."""
    sink = DeadLetters()
    url = f"http://127.0.0.1:{free_port()}/advis"
    delivery = WebhookDelivery("fagsystem", _config(url, max_attempts=2), sink)
    await delivery.deliver(notification())
    await wait_until(lambda: len(sink.records) == 1)
    await delivery.close()
    record = sink.values()[0]
    assert record["attempts"] == 2
    assert record["last_error"].startswith("Client")


async def test_close_dead_letters_what_is_still_undelivered(receiver: Receiver) -> None:
    """close() waits up to its timeout, then dead-letters the lane's rest; deliver refuses."""
    never = hang(receiver)
    sink = DeadLetters()
    delivery = WebhookDelivery("fagsystem", _config(receiver.url, timeout=30.0), sink)
    await delivery.deliver(notification("n-1"))
    await delivery.deliver(notification("n-2"))
    await wait_until(lambda: len(receiver.attempts) == 1)
    await delivery.close(timeout=0.1)
    assert [r["notification_id"] for r in sink.values()] == ["n-1", "n-2"]
    assert [r["last_error"] for r in sink.values()] == ["shutdown", "shutdown"]
    with pytest.raises(DeliveryClosedError):
        await delivery.deliver(notification("n-3"))
    never.set()


async def test_full_lane_dead_letters_instead_of_growing(receiver: Receiver) -> None:
    """Beyond max_pending a recipient's lane refuses more: they go to the dead letters."""
    never = hang(receiver)
    sink = DeadLetters()
    delivery = WebhookDelivery("fagsystem", _config(receiver.url, max_pending=1), sink)
    for number in range(3):
        await delivery.deliver(notification(f"n-{number}"))
    await wait_until(lambda: len(sink.records) == 2)
    assert [r["last_error"] for r in sink.values()] == ["queue_full", "queue_full"]
    assert delivery.pending() == 1
    never.set()
    await wait_until(lambda: len(receiver.accepted) == 1)
    await delivery.close()
    assert receiver.accepted[0]["id"] == "n-0"

"""Durable delivery without Kafka: pending deliveries in SQLite survive a stop and are resent."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest
from aiohttp import web

from advisering.delivery.config import ChannelsConfig, EmailConfig
from advisering.delivery.email import EmailDigest
from advisering.engine.notification import Notification
from advisering.http.server import create_web_app
from advisering.inbox.durable import CHANNEL_REMOVED, DurableDelivery
from advisering.inbox.storage import InboxStorage
from advisering.settings import Settings
from advisering.yamlfiles import YamlFileError
from tests.pg import open_store
from tests.unit.delivery_support import (
    DeadLetters,
    SmtpInbox,
    free_port,
    notification,
    smtp_server,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0


def stored(nid: str) -> Notification:
    """A notification as the inbox consumer hands it to the store."""
    return notification(nid)


@dataclass
class Receiver:
    """A real aiohttp webhook endpoint on 127.0.0.1 that answers ``status``."""

    port: int
    status: int = 200
    attempts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/advis"

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/advis", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(free_port())  # not started: the test decides when it comes up
    yield state
    await state.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpInbox, int]]:
    with smtp_server() as server:
        yield server


class RecordingSleep:
    """asyncio.sleep that remembers each delay (a requested backoff means a try failed)."""

    def __init__(self) -> None:
        self.requested: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        await asyncio.sleep(seconds)


def damage(inbox_db: Path | str, notification_id: str, body: bytes) -> None:
    """Overwrite a stored body behind the store's back (a hand edit, a damaged disk)."""
    if isinstance(inbox_db, Path):
        with sqlite3.connect(inbox_db) as db:
            db.execute("UPDATE notifications SET body = ? WHERE id = ?", (body, notification_id))
        return
    with psycopg.connect(inbox_db, autocommit=True) as pg:
        pg.execute("UPDATE notifications SET body = %s WHERE id = %s", (body, notification_id))


async def wait_for_deliveries(store: InboxStorage, notification_id: str,
                              expected: dict[str, tuple[str, str | None]],
                              timeout: float = 5.0) -> None:
    """Poll the store until the notification's deliveries are ``expected``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await store.deliveries(notification_id) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"deliveries of {notification_id} never became {expected}")
        await asyncio.sleep(0.02)


def webhook_channels(url: str, **webhook: Any) -> ChannelsConfig:
    options: dict[str, Any] = {"url": url, "secret": "s" * 32, "initial_backoff": HOUR,
                               "max_backoff": HOUR, "timeout": 2.0}
    options.update(webhook)
    return ChannelsConfig.model_validate({"channels": [
        {"name": "fagsystem", "match": {"department": "boern-familie"}, "webhook": options},
    ]})


def traced_session(keys: list[str]) -> aiohttp.ClientSession:
    """A client session that records the Idempotency-Key of every request it starts."""
    async def started(_session: Any, _ctx: SimpleNamespace, params: Any) -> None:
        keys.append(params.headers["Idempotency-Key"])

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    return aiohttp.ClientSession(trace_configs=[trace])


@pytest.mark.parametrize("stop", ["shutdown", "crash"])
async def test_pending_webhook_is_delivered_once_after_restart(
    inbox_db: Path | str, receiver: Receiver, stop: str,
) -> None:
    """Receiver down, service stops: the next start delivers once, same key, and settles it."""
    sink, sleeper, keys = DeadLetters(), RecordingSleep(), []
    config = webhook_channels(receiver.url)
    session = traced_session(keys)
    store = await open_store(inbox_db)
    first = DurableDelivery(config, store, sink, sleep=sleeper, jitter=lambda: 1.0,
                            session=session)
    assert await first.start() == 0
    new = await store.add_many([stored("n-1")], channels_for=first.channels_for)
    assert await store.deliveries("n-1") == {"fagsystem": ("pending", None)}
    first.listener(new)
    await wait_until(lambda: sleeper.requested == [HOUR])  # refused, waiting an hour
    assert keys == ["n-1"]
    if stop == "shutdown":
        await first.close(timeout=0.01)  # nothing settles: the rest stays due
        await store.close()

    await receiver.start()
    restarted = await open_store(inbox_db)
    assert [(d.notification.id, d.channel) for d in await restarted.unsettled()] == [
        ("n-1", "fagsystem")]
    second = DurableDelivery(config, restarted, sink)
    assert await second.start() == 1
    await wait_for_deliveries(restarted, "n-1", {
        "fagsystem": ("settled", "delivered")})
    await asyncio.sleep(0.2)
    assert len(receiver.attempts) == 1
    headers, body = receiver.attempts[0]
    assert headers["Idempotency-Key"] == keys[0] == "n-1"
    assert orjson.loads(body)["id"] == "n-1"
    await second.close()

    third = DurableDelivery(config, restarted, sink)
    assert await third.start() == 0  # settled: never sent again
    await third.close()
    assert len(receiver.attempts) == 1
    assert sink.records == []
    if stop == "crash":
        await first.close(timeout=0.01)
        await store.close()
    await restarted.close()
    await session.close()


async def test_dead_lettered_delivery_is_settled(inbox_db: Path | str,
                                                receiver: Receiver) -> None:
    """A delivery that ends in the dead letters is settled as dead_lettered, not resent."""
    receiver.status = 500
    await receiver.start()
    sink = DeadLetters()
    store = await open_store(inbox_db)
    delivery = DurableDelivery(webhook_channels(receiver.url, max_attempts=2,
                                                initial_backoff=0.01, max_backoff=0.01),
                               store, sink)
    await delivery.start()
    delivery.listener(await store.add_many([stored("n-7")], channels_for=delivery.channels_for))
    await wait_for_deliveries(store, "n-7", {
        "fagsystem": ("settled", "dead_lettered")})
    await delivery.close()
    assert [(r["notification_id"], r["reason"], r["attempts"]) for r in sink.values()] == [
        ("n-7", "webhook_failed", 2)]
    again = DurableDelivery(webhook_channels(receiver.url), store, sink)
    assert await again.start() == 0
    await again.close()
    assert len(receiver.attempts) == 2
    await store.close()


async def test_failing_dead_letter_sink_leaves_the_delivery_due(
    inbox_db: Path | str, receiver: Receiver,
) -> None:
    """When the dead-letter sink does not take the record, the delivery stays pending."""
    receiver.status = 400
    await receiver.start()

    async def broken_sink(_key: bytes, _value: bytes) -> None:
        raise RuntimeError("kafka down")

    store = await open_store(inbox_db)
    delivery = DurableDelivery(webhook_channels(receiver.url), store, broken_sink)
    await delivery.start()
    delivery.listener(await store.add_many([stored("n-8")], channels_for=delivery.channels_for))
    await wait_until(lambda: len(receiver.attempts) == 1)
    await delivery.close()
    assert await store.deliveries("n-8") == {"fagsystem": ("pending", None)}
    await store.close()


async def test_pending_rows_are_written_with_the_notification(inbox_db: Path | str) -> None:
    """add_many records pending deliveries in its transaction: both or neither, never twice."""
    store = await open_store(inbox_db)
    routed = stored("n-1")
    unrouted = notification("n-2", department="jobcenter", unit="jc-nord")

    def channels(n: Notification) -> list[str]:
        return ["a", "b"] if n.recipient.department == "boern-familie" else []

    assert len(await store.add_many([routed, unrouted], channels_for=channels)) == 2
    assert [(d.notification.id, d.channel) for d in await store.unsettled()] == [
        ("n-1", "a"), ("n-1", "b")]
    assert await store.add_many([routed], channels_for=channels) == []  # a repeat adds nothing
    assert await store.mark_settled("n-1", "a", "delivered")
    assert not await store.mark_settled("n-2", "a", "delivered")
    await store.mark_pending("n-1", ["a"])  # settled stays settled
    assert await store.deliveries("n-1") == {"a": ("settled", "delivered"), "b": ("pending", None)}

    def broken(_n: Any) -> list[str]:
        raise RuntimeError("routing bug")

    with pytest.raises(RuntimeError):
        await store.add_many([stored("n-3")], channels_for=broken)
    assert await store.deliveries("n-3") == {}
    assert await store.add_many([stored("n-3")]) != []  # the rollback took the notification
    await store.close()


async def test_unreadable_stored_body_stays_pending_and_spares_the_rest(
        inbox_db: Path | str) -> None:
    """A damaged stored body is left out of the re-dispatch (still pending), never a crash."""
    store = await open_store(inbox_db)
    await store.add_many([stored("n-1"), stored("n-2")], channels_for=lambda _n: ["gone"])
    damage(inbox_db, "n-1", b'{"id": "n-1"}')
    assert [d.notification.id for d in await store.unsettled()] == ["n-2"]
    delivery = DurableDelivery(ChannelsConfig(), store, DeadLetters())
    assert await delivery.start() == 1
    await delivery.close()
    assert await store.deliveries("n-1") == {"gone": ("pending", None)}
    assert await store.deliveries("n-2") == {"gone": ("settled", CHANNEL_REMOVED)}
    await store.close()


async def test_removed_channel_settles_its_pending_deliveries(inbox_db: Path | str) -> None:
    """A pending delivery for a channel no longer configured is settled as channel_removed."""
    store = await open_store(inbox_db)
    await store.add_many([stored("n-1")], channels_for=lambda _n: ["gone"])
    delivery = DurableDelivery(ChannelsConfig(), store, DeadLetters())
    assert await delivery.start() == 1
    await delivery.close()
    assert await store.deliveries("n-1") == {"gone": ("settled", CHANNEL_REMOVED)}
    await store.close()


def _email(port: int, **overrides: Any) -> EmailConfig:
    values: dict[str, Any] = {"smtp_host": "127.0.0.1", "smtp_port": port,
                              "sender": "advis@kommune.example",
                              "address": "{caseworker}@kommune.example", "timeout": 5.0}
    values.update(overrides)
    return EmailConfig.model_validate(values)


class Settled(list[tuple[str, str, str]]):
    """An on_settled hook that keeps what it hears."""

    async def __call__(self, notification_id: str, channel: str, outcome: str) -> None:
        self.append((notification_id, channel, outcome))


async def test_email_digest_reports_delivered_and_dead_lettered(
    smtp: tuple[SmtpInbox, int],
) -> None:
    """A sent digest settles each notification as delivered; a given-up one as dead_lettered."""
    inbox, port = smtp
    settled = Settled()
    digest = EmailDigest("mail", _email(port), DeadLetters(), on_settled=settled)
    await digest.deliver(notification("n-1"))
    await digest.deliver(notification("n-2"))
    await digest.flush()
    assert inbox.count() == 1
    assert sorted(settled) == [("n-1", "mail", "delivered"), ("n-2", "mail", "delivered")]
    await digest.close()

    settled.clear()
    sink = DeadLetters()
    failing = EmailDigest("mail", _email(free_port(), max_attempts=1), sink, on_settled=settled)
    await failing.deliver(notification("n-3"))
    await failing.flush()
    assert settled == [("n-3", "mail", "dead_lettered")]
    assert [r["notification_id"] for r in sink.values()] == ["n-3"]
    await failing.close()


async def test_email_close_without_dead_letters_leaves_the_rest_unsettled() -> None:
    """close(dead_letter_rest=False) with the relay down: no dead letter, nothing settled."""
    settled, sink = Settled(), DeadLetters()
    digest = EmailDigest("mail", _email(free_port()), sink, on_settled=settled)
    await digest.deliver(notification("n-1"))
    await digest.close(dead_letter_rest=False)
    assert settled == [] and sink.records == []


def _bad_channels(tmp_path: Path) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text("channels:\n  - name: fagsystem\n    match: {department: boern-familie}\n"
                    "    webhook: {url: 'https://x.example/a', secret: 'short'}\n")
    return path


def test_bad_channels_file_stops_the_app_from_being_built(tmp_path: Path) -> None:
    """create_web_app refuses a bad channels file, naming the file and the field."""
    path = _bad_channels(tmp_path)
    settings = Settings(bootstrap_servers="127.0.0.1:1", token_secret="s" * 32,
                        inbox_db=tmp_path / "inbox.sqlite3", channels_file=path)
    with pytest.raises(YamlFileError) as caught:
        create_web_app(settings)
    assert caught.value.problems[0].file == path
    assert caught.value.problems[0].path == "channels.0.webhook.secret"


def test_serve_with_bad_channels_file_exits_with_the_error(tmp_path: Path) -> None:
    """`advisering serve` with a bad channels file exits 2, naming file and field, no traceback."""
    path = _bad_channels(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env.update(ADVISERING_BOOTSTRAP_SERVERS="127.0.0.1:1", ADVISERING_TOKEN_SECRET="s" * 32,
               ADVISERING_INBOX_DB=str(tmp_path / "inbox.sqlite3"),
               ADVISERING_CHANNELS_FILE=str(path), ADVISERING_SERVE_PORT=str(free_port()))
    result = subprocess.run([sys.executable, "-m", "advisering.cli", "serve"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "channels.0.webhook.secret" in result.stderr
    assert "Traceback" not in result.stderr

"""Wiring the inbox into `advisering serve`: store, consumer, API, page, expiry, delivery.

With ``ADVISERING_CHANNELS_FILE`` set, the file is loaded when the app is
built, so a bad file stops ``advisering serve`` before it listens, naming the
file and the field. Every NEW notification the consumer stores then also goes
to its recipient's webhook and e-mail channels (``advisering.inbox.durable``);
what cannot be delivered goes to ``advisering.dead-letters`` through an
idempotent ``acks=all`` producer.

The store is SQLite or PostgreSQL (``advisering.inbox.storage``); it is opened
and migrated when the app starts. Delivery is at-least-once. Each
(notification, channel) is recorded as pending in the same transaction that
stores the notification, and settled when the channel delivered or
dead-lettered it; at start-up every delivery still pending is dispatched
again. So a notification queued in memory when the service crashed is still
delivered, and one that was delivered in the moment before the crash may
reach a webhook receiver twice, both times with the same
``Idempotency-Key`` header (the notification id): receivers must deduplicate
by it. Shutdown order: consumer, then the router (what it has not delivered
within the timeout stays pending), then the dead-letter producer, then the
store. With several replicas on PostgreSQL each re-dispatches the pending
deliveries at its start, so one another replica is sending right then may
also be sent twice (the same Idempotency-Key again).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from importlib import resources
from typing import Any

from aiohttp import web

from advisering.delivery.config import ChannelsConfig, load_channels
from advisering.inbox.api import InboxApi
from advisering.inbox.consumer import NotificationConsumer
from advisering.inbox.durable import DurableDelivery
from advisering.inbox.live import Broadcast, LiveLimits
from advisering.inbox.revocation import RevocationList, revocation_file
from advisering.inbox.storage import InboxStorage, storage_for
from advisering.inbox.tokens import TokenPolicy, check_secret
from advisering.kafka.clients import producer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.producer import AsyncProducer
from advisering.kafka.topics import DEAD_LETTERS
from advisering.labels import labels_json
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)

STORE = web.AppKey("inbox_store", InboxStorage)
CONSUMER = web.AppKey("inbox_consumer", NotificationConsumer)
BROADCAST = web.AppKey("inbox_broadcast", Broadcast)
REVOCATIONS = web.AppKey("inbox_revocations", RevocationList)
EXPIRY_EVERY_SECONDS = 3600.0
DELIVERY_CLOSE_SECONDS = 10.0
DEAD_LETTER_TIMEOUT_MS = 30_000


def _static(name: str) -> bytes:
    body = resources.files("advisering.inbox").joinpath("static", name).read_bytes()
    if name == "index.html":
        # The page's Danish labels, from the one table the engine and e-mail use too.
        body = body.replace(b"{{labels}}", labels_json().replace(b"</", b"<\\/"))
    return body


def add_inbox(app: web.Application, settings: Settings, *, consume: bool = True) -> None:
    """Add the inbox API, the page and (unless ``consume`` is False) the topic consumer.

    Raises ``YamlFileError`` for a bad channels file, before anything is opened.
    """
    secret = settings.token_secret_bytes()
    assert secret is not None
    check_secret(secret)
    channels = None if settings.channels_file is None else load_channels(settings.channels_file)
    store = storage_for(settings)
    broadcast = Broadcast(LiveLimits(
        queue_max=settings.sse_queue_max, streams_per_token=settings.sse_streams_per_token,
        write_timeout=settings.sse_write_timeout_seconds))
    revocations = RevocationList(
        revocation_file(settings.token_revocation_file, settings.inbox_sqlite_path()),
        max_bytes=settings.token_revocation_max_bytes,
        max_entries=settings.token_revocation_max_entries,
        interval=settings.token_revocation_check_seconds)
    revocations.on_revoked.append(broadcast.revoke)
    InboxApi(store, secret, broadcast, settings.case_urls, policy=TokenPolicy.from_settings(
        settings), revocations=revocations).routes(app)
    app[STORE] = store
    app[BROADCAST] = broadcast
    app[REVOCATIONS] = revocations
    _add_page(app)
    running = _InboxRunning(settings, channels, store, broadcast, consume=consume)
    app.on_startup.append(running.start)
    app.on_shutdown.append(running.end_streams)
    app.on_cleanup.append(running.stop)


_PAGES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


def _page(name: str) -> web.Response:
    return web.Response(body=_static(name), content_type=_PAGES[name], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


def _add_page(app: web.Application) -> None:
    """The caseworkers' page: index and its static files, never cached stale."""

    async def index(_request: web.Request) -> web.Response:
        return _page("index.html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _PAGES:
            raise web.HTTPNotFound()
        return _page(name)

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)


class _InboxRunning:
    """What runs beside the API: the notification consumer, delivery and the expiry loop."""

    def __init__(self, settings: Settings, channels: ChannelsConfig | None, store: InboxStorage,
                 broadcast: Broadcast, *, consume: bool) -> None:
        self.settings, self.channels, self.store = settings, channels, store
        self.broadcast, self.consume = broadcast, consume
        self.retention = dt.timedelta(days=settings.inbox_retention_days)

    async def expire_forever(self) -> None:
        while True:
            try:
                removed = await self.store.expire(self.retention)
            except Exception as exc:  # noqa: BLE001 - the database may be away; try next time
                log.warning("inbox_expiry_failed", error=type(exc).__name__)
                removed = 0
            if removed:
                log.info("inbox_expired", removed=removed)
            await asyncio.sleep(EXPIRY_EVERY_SECONDS)

    async def watch_revocations(self, revocations: RevocationList) -> None:
        """Reread the revocation file as it changes, so revoked tokens' streams close at once."""
        while True:
            await asyncio.sleep(self.settings.token_revocation_check_seconds)
            revocations.refresh()

    async def start(self, app: web.Application) -> None:
        migrated = await self.store.open()
        log.info("inbox_store_opened", store="postgresql" if self.store.shared else "sqlite",
                 schema_version=migrated.after)
        if self.store.shared:
            # Every replica's new notifications (this one's too) reach the streams this way.
            app[FOLLOW] = asyncio.create_task(
                self.store.follow(self.broadcast.publish, self.broadcast.wants))
        app[REVOCATION_WATCH] = asyncio.create_task(self.watch_revocations(app[REVOCATIONS]))
        if self.consume:
            delivery = None
            if self.channels is not None:
                # Re-dispatches what is still pending before the consumer brings new input.
                delivery = await _start_delivery(app, self.settings, self.channels, self.store)
            consumer = NotificationConsumer(
                KafkaConnection.from_settings(self.settings), self.settings.inbox_group,
                self.store,
                channels_for=None if delivery is None else delivery.channels_for,
            )
            if not self.store.shared:
                consumer.add_listener(self.broadcast.publish)
            if delivery is not None:
                consumer.add_listener(delivery.listener)
            consumer.start(asyncio.get_running_loop())
            app[CONSUMER] = consumer
        app[EXPIRY] = asyncio.create_task(self.expire_forever())

    async def end_streams(self, _app: web.Application) -> None:
        """Serve stops: end the live streams first, so their handlers return at once."""
        self.broadcast.end_all()

    async def stop(self, app: web.Application) -> None:
        for key in (EXPIRY, REVOCATION_WATCH, FOLLOW):
            if key in app:
                app[key].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await app[key]
        if CONSUMER in app:
            await asyncio.to_thread(app[CONSUMER].stop)
        await _stop_delivery(app)
        await self.store.close()


def delivery_producer_config(settings: Settings) -> dict[str, Any]:
    """The producer of the delivery channels' dead letters (durable, as every producer)."""
    return producer_config(KafkaConnection.from_settings(settings),
                           client_id="advisering-delivery",
                           delivery_timeout=DEAD_LETTER_TIMEOUT_MS / 1000)


async def _start_delivery(
    app: web.Application, settings: Settings, channels: ChannelsConfig, store: InboxStorage,
) -> DurableDelivery:
    """The dead-letter producer and the durable router, started; kept in the app for stop."""
    producer = AsyncProducer(delivery_producer_config(settings))
    producer.start()
    app[DEAD_LETTER_PRODUCER] = producer

    async def dead_letter(key: bytes, value: bytes) -> None:
        await producer.send(DEAD_LETTERS, key, value)

    delivery = DurableDelivery(channels, store, dead_letter)
    app[DELIVERY] = delivery
    await delivery.start()
    return delivery


async def _stop_delivery(app: web.Application) -> None:
    """Router first (its last dead letters need the producer), then the producer."""
    if DELIVERY in app:
        await app[DELIVERY].close(DELIVERY_CLOSE_SECONDS)
    if DEAD_LETTER_PRODUCER in app:
        await app[DEAD_LETTER_PRODUCER].close()


EXPIRY = web.AppKey("inbox_expiry", asyncio.Task[None])
REVOCATION_WATCH = web.AppKey("inbox_revocation_watch", asyncio.Task[None])
FOLLOW = web.AppKey("inbox_follow", asyncio.Task[None])
DELIVERY = web.AppKey("inbox_delivery", DurableDelivery)
DEAD_LETTER_PRODUCER = web.AppKey("inbox_dead_letter_producer", AsyncProducer)

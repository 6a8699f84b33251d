"""Wiring the inbox into `advisering serve`: store, consumer, API, page, expiry."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from importlib import resources

from aiohttp import web

from advisering.inbox.api import Broadcast, InboxApi
from advisering.inbox.consumer import NotificationConsumer
from advisering.inbox.store import InboxStore
from advisering.inbox.tokens import check_secret
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)

STORE = web.AppKey("inbox_store", InboxStore)
CONSUMER = web.AppKey("inbox_consumer", NotificationConsumer)
BROADCAST = web.AppKey("inbox_broadcast", Broadcast)
EXPIRY_EVERY_SECONDS = 3600.0


def _static(name: str) -> bytes:
    return resources.files("advisering.inbox").joinpath("static", name).read_bytes()


def add_inbox(app: web.Application, settings: Settings, *, consume: bool = True) -> None:
    """Add the inbox API, the page and (unless ``consume`` is False) the topic consumer."""
    secret = settings.token_secret_bytes()
    assert secret is not None
    check_secret(secret)
    store = InboxStore(settings.inbox_db)
    broadcast = Broadcast()
    InboxApi(store, secret, broadcast, settings.case_urls).routes(app)
    app[STORE] = store
    app[BROADCAST] = broadcast
    retention = dt.timedelta(days=settings.inbox_retention_days)
    pages = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}

    def page(name: str) -> web.Response:
        return web.Response(body=_static(name), content_type=pages[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def index(request: web.Request) -> web.Response:
        return page("index.html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in pages:
            raise web.HTTPNotFound()
        return page(name)

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)

    async def expire_forever() -> None:
        while True:
            removed = await asyncio.to_thread(store.expire, retention)
            if removed:
                log.info("inbox_expired", removed=removed)
            await asyncio.sleep(EXPIRY_EVERY_SECONDS)

    async def start(app: web.Application) -> None:
        if consume:
            consumer = NotificationConsumer(settings.bootstrap_servers, settings.inbox_group,
                                            store)
            consumer.add_listener(broadcast.publish)
            consumer.start(asyncio.get_running_loop())
            app[CONSUMER] = consumer
        app[EXPIRY] = asyncio.create_task(expire_forever())

    async def stop(app: web.Application) -> None:
        app[EXPIRY].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[EXPIRY]
        if CONSUMER in app:
            await asyncio.to_thread(app[CONSUMER].stop)
        store.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


EXPIRY = web.AppKey("inbox_expiry", asyncio.Task[None])

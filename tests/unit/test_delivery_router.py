"""The router sends each notification to its recipient's channels, real servers behind them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from advisering.delivery.config import ChannelsConfig
from advisering.delivery.router import DeliveryRouter
from tests.unit.delivery_support import (
    DeadLetters,
    SmtpInbox,
    Ticker,
    notification,
    smtp_server,
    wait_until,
)


def unrouted() -> float:
    return REGISTRY.get_sample_value("advisering_delivery_unrouted_total") or 0.0


@pytest.fixture
async def servers() -> AsyncIterator[tuple[list[dict[str, Any]], SmtpInbox, str, int]]:
    posted: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        posted.append(orjson.loads(await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/advis", handle)
    http = TestServer(app, host="127.0.0.1")
    await http.start_server()
    with smtp_server() as (inbox, port):
        yield posted, inbox, str(http.make_url("/advis")), port
    await http.close()


def _config(url: str, smtp_port: int) -> ChannelsConfig:
    return ChannelsConfig.model_validate({"channels": [
        {"name": "bf-fagsystem", "match": {"department": "boern-familie"},
         "webhook": {"url": url, "secret": "s" * 32, "initial_backoff": 0.01,
                     "max_backoff": 0.01}},
        {"name": "hjemmepleje-mail", "match": {"unit": "hjemmepleje-vest"},
         "email": {"smtp_host": "127.0.0.1", "smtp_port": smtp_port,
                   "sender": "advis@kommune.example", "address": "{caseworker}@kommune.example",
                   "interval": 900}},
    ]})


async def test_dispatch_reaches_the_matching_channels(
    servers: tuple[list[dict[str, Any]], SmtpInbox, str, int],
) -> None:
    """Department rule to the webhook, unit rule to e-mail; unmatched is only counted."""
    posted, inbox, url, smtp_port = servers
    ticker = Ticker()
    router = DeliveryRouter(_config(url, smtp_port), DeadLetters(), sleep=ticker.sleep)
    await router.start()
    unrouted_before = unrouted()

    assert await router.dispatch(notification("n-bf")) == ["bf-fagsystem"]
    elder = notification("n-hp", caseworker="hp-7", unit="hjemmepleje-vest", department="aeldre")
    assert await router.dispatch(elder) == ["hjemmepleje-mail"]
    job = notification("n-jc", caseworker="jc-1", unit="jobcenter-nord", department="jobcenter")
    assert await router.dispatch(job) == []
    assert unrouted() - unrouted_before == 1

    await wait_until(lambda: len(posted) == 1)
    assert posted[0]["id"] == "n-bf"
    assert inbox.count() == 0
    ticker.tick()  # the digest interval is over
    await wait_until(lambda: inbox.count() == 1)
    assert inbox.received[0].rcpt_tos == ["hp-7@kommune.example"]
    await router.close(timeout=1.0)
    assert router.pending() == 0


async def test_close_sends_the_waiting_digests(
    servers: tuple[list[dict[str, Any]], SmtpInbox, str, int],
) -> None:
    """Closing the router mails what is waiting instead of dropping it."""
    _, inbox, url, smtp_port = servers
    router = DeliveryRouter(_config(url, smtp_port), DeadLetters())
    await router.start()
    await router.dispatch(notification("n-1", caseworker="hp-7", unit="hjemmepleje-vest",
                                       department="aeldre"))
    assert router.pending() == 1
    await router.close()
    assert inbox.count() == 1

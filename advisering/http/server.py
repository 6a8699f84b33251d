"""`advisering serve`: the HTTP side of the bus (ingest and the caseworkers' inbox).

Health (`/healthz`: the process is alive), readiness (`/readyz`: Kafka
answers), Prometheus metrics (`/metrics`) and the OpenAPI document
(`/api/v1/openapi.json`) come with it. Every response carries the security
headers of :mod:`advisering.http.headers`; with a certificate and key set,
serve answers https itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from advisering.http.headers import add_security_headers, server_ssl_context
from advisering.http.ingest import MAX_BODY, IngestConfig, IngestHandler
from advisering.http.openapi import openapi_document
from advisering.http.sources import utc_now
from advisering.http.sources_reload import ReloadingSources
from advisering.inbox.service import REVOCATIONS, add_inbox
from advisering.insight.api import add_insight
from advisering.kafka.clients import broker_answers, case_events_producer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.producer import AsyncProducer
from advisering.kafka.topics import default_vocabulary
from advisering.log import get_logger
from advisering.settings import MissingPseudonymKeyError, Settings

log = get_logger(__name__)


class Readiness:
    """Whether Kafka answers, asked at most every two seconds."""

    def __init__(self, kafka: KafkaConnection) -> None:
        self.kafka = kafka
        self._checked = 0.0
        self._ready = False

    async def ready(self) -> bool:
        """Kafka answered the last check (made now when the last one is stale)."""
        if time.monotonic() - self._checked > 2.0:
            self._ready = await asyncio.to_thread(broker_answers, self.kafka, 2.0)
            self._checked = time.monotonic()
        return self._ready


def create_web_app(settings: Settings, *, consume: bool = True,
                   wall_clock: Callable[[], dt.datetime] = utc_now,
                   metrics_dir: Path | None = None) -> web.Application:
    """The HTTP side: ingest (with a pseudonym key), inbox (with a token secret), health.

    ``wall_clock`` is what a rotated-out API key's expiry is compared with (tests move it).
    ``metrics_dir``: this is one of several serve processes, whose metrics are
    summed from that directory (:mod:`advisering.http.processes`).
    """
    if settings.pseudonym_key is None and settings.token_secret is None:
        raise MissingPseudonymKeyError(
            "advisering serve needs ADVISERING_PSEUDONYM_KEY (HTTP ingest) and/or "
            "ADVISERING_TOKEN_SECRET (caseworker inbox).")
    kafka = KafkaConnection.from_settings(settings)  # a wrong security setting stops serve now
    app = web.Application(client_max_size=settings.ingest_max_body_bytes)
    add_security_headers(app, tls=settings.serve_tls_cert_file is not None)
    readiness = Readiness(kafka)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        ready = await readiness.ready()
        return web.json_response({"ready": ready, "kafka": ready}, status=200 if ready else 503)

    async def metrics_page(_request: web.Request) -> web.Response:
        return web.Response(body=_metrics_text(metrics_dir),
                            content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(openapi_document(settings.ingest_max_events))

    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    if settings.pseudonym_key is not None:
        add_ingest(app, settings, wall_clock)
    if settings.token_secret is not None:
        add_inbox(app, settings, consume=consume)
        if settings.pseudonym_key is not None:  # the CPR number is pseudonymised here too
            add_insight(app, settings, app[REVOCATIONS])
    return app


def ingest_producer_config(settings: Settings) -> dict[str, Any]:
    """The ingest's producer: durable, and it gives up (503) after the ingest's delivery timeout."""
    return case_events_producer_config(
        KafkaConnection.from_settings(settings), {"linger.ms": 2}, client_id="advisering-ingest",
        delivery_timeout=settings.ingest_delivery_timeout)


def add_ingest(app: web.Application, settings: Settings,
               wall_clock: Callable[[], dt.datetime] = utc_now) -> None:
    """POST /api/v1/events with its producer, started and stopped with the app.

    The sources file is read now (an invalid one stops serve with the file's
    problems) and again whenever it changes, so keys and grants need no restart.
    """
    vocabulary = default_vocabulary(settings.topics_dir, settings)
    sources = ReloadingSources(settings.sources_file, vocabulary,
                               interval=settings.sources_reload_seconds, required=False)
    app[MAX_BODY] = settings.ingest_max_body_bytes
    producer = AsyncProducer(ingest_producer_config(settings))
    handler = IngestHandler(
        IngestConfig(settings.pseudonym_key_bytes(), vocabulary, settings.ingest_max_events),
        producer,
        sources,
        wall_clock,
    )

    async def start_producer(_app: web.Application) -> None:
        producer.start()

    async def stop_producer(_app: web.Application) -> None:
        await producer.close()

    app.on_startup.append(start_producer)
    app.on_cleanup.append(stop_producer)
    app.router.add_post("/api/v1/events", handler.post_events)


def _metrics_text(metrics_dir: Path | None) -> bytes:
    """This process's metrics; with ``metrics_dir``, those of every serve process, summed."""
    if metrics_dir is None:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def run_server(settings: Settings, process: int | None = None,
               metrics_dir: Path | None = None) -> int:
    """Serve until interrupted (`advisering serve`); the exit status is 0.

    ``process`` is this child's index among several serve processes: it then
    binds the port with SO_REUSEPORT beside its siblings, every log line
    names it, and ``metrics_dir`` is where they all count.
    """
    if process is not None:
        structlog.contextvars.bind_contextvars(serve_process=process)
    ssl_context = server_ssl_context(settings.serve_tls_cert_file, settings.serve_tls_key_file)
    app = create_web_app(settings, metrics_dir=metrics_dir)
    log.info("serve_starting", host=settings.serve_host, port=settings.serve_port,
             pid=os.getpid(), tls=ssl_context is not None)
    web.run_app(app, host=settings.serve_host, port=settings.serve_port, print=None,
                access_log=None, reuse_port=process is not None, ssl_context=ssl_context)
    return 0



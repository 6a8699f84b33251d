"""The worker's web pages: /metrics, /healthz and /readyz (on Faust's web server).

``/healthz`` is liveness: 503 from the moment the app crashed (the process
is then exiting, see :mod:`advisering.worker.lifecycle`). ``/readyz`` is
readiness: 503 while the worker rebalances, recovers its tables, has lost
its rules watcher thread or has crashed.
"""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from advisering.worker import faust_door
from advisering.worker.lifecycle import WorkerStatus


def add_pages(app: faust.App, status: WorkerStatus) -> None:
    """/metrics, /healthz (503 once the app crashed) and /readyz (503 until it can work)."""
    @app.page("/metrics")
    async def metrics_page(web: Any, _request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, _request: Any) -> Any:
        if faust_door.crashed(app):  # from the moment of the crash; the process is exiting
            return web.json({"status": "crashed"}, status=503)
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: Any, _request: Any) -> Any:
        rebalancing, recovering, recovered = faust_door.readiness(app)
        watcher = status.watcher_up()
        crashed = faust_door.crashed(app)
        ready = not rebalancing and not recovering and recovered and watcher and not crashed
        body = {"ready": ready, "rebalancing": rebalancing, "recovering": recovering,
                "rules_watcher": "up" if watcher else "ended", "crashed": crashed}
        return web.json(body, status=200 if ready else 503)

"""schemathesis, an outside tool, holds `serve` to its own OpenAPI document, on the real broker.

The server runs in this process on a free loopback port (the ingest with its
real producer, the inbox with notifications in its store); schemathesis runs
as its own command with every check, once with a fixed seed and once with a
random one that the failure message names, so any failure can be replayed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from advisering.dev.demo import demo_grants
from advisering.engine.notification import Notification
from advisering.http.server import create_web_app
from advisering.http.sources import add_source
from advisering.inbox import tokens
from advisering.inbox.service import STORE
from advisering.kafka.topics import load_vocabulary
from advisering.settings import Settings
from tests.integration.bus import ROOT

FIXED_SEED = 20261203
RANDOM_SEED = secrets.randbelow(2**32)
# Generated cases per operation and phase: about 900 requests, some twenty seconds a run.
MAX_EXAMPLES = 40
# A batch above the limit is 413 (documented), a status schemathesis does not
# expect by default for a request that breaks the schema.
REJECTION_STATUSES = "400,401,403,404,405,406,409,413,415,422"


@dataclass(frozen=True)
class Served:
    """Where the server answers, and the credentials schemathesis presents."""

    url: str
    api_key: str
    token: str


def _notification(number: int, caseworker: str | None, unit: str) -> Notification:
    """A stored notification as the worker writes it, so the {id} operations can find one."""
    created = dt.datetime(2026, 11, 29, 9, number, tzinfo=dt.UTC).isoformat()
    nid = f"{number:032x}"
    return Notification.from_json({
        "id": nid, "rule": "sanktion-til-boernesag", "title": "Sanktion", "severity": "high",
        "recipient": {"caseworker": caseworker, "unit": unit, "department": "boern-familie"},
        "related_case": {"id": f"DUBU-{number}", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": f"e{number}", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": created},
        "citizen": "ps1-" + "a" * 52, "message": f"Borgeren i din sag DUBU-{number} ...",
        "legal_basis": "Barnets lov", "created": created,
    })


@pytest.fixture(scope="module")
def served(topics_ready: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`serve`'s app (ingest and inbox) on a free loopback port, in a thread of its own."""
    folder = tmp_path_factory.mktemp("openapi")
    sources = folder / "sources.yaml"
    api_key = add_source(sources, "momentum", demo_grants()["momentum"],
                         vocabulary=load_vocabulary(ROOT / "topics"))
    secret = secrets.token_hex(32)
    settings = Settings(bootstrap_servers=topics_ready, pseudonym_key=secrets.token_hex(32),
                        sources_file=sources, topics_dir=ROOT / "topics",
                        ingest_max_events=5, ingest_delivery_timeout=5.0,
                        token_secret=secret, inbox_db=folder / "inbox.sqlite3")
    app = create_web_app(settings, consume=False)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(app[STORE].add_many([
        _notification(1, "bf-0042", "bf-syd"), _notification(2, None, "bf-syd"),
        _notification(3, "bf-0077", "bf-nord")]))
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", api_key,
                     tokens.issue(secret.encode(), "bf-0042", "boern-familie", "bf-syd"))
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def schemathesis_config(served: Served, folder: Path) -> Path:
    """The source key for the ingest's scheme, a caseworker token for the inbox's."""
    path = folder / "schemathesis.toml"
    path.write_text(
        "[generation]\n"
        'database = "none"\n'
        "[checks.negative_data_rejection]\n"
        f"expected-statuses = [{REJECTION_STATUSES}]\n"
        "[auth.openapi.apiKey]\n"
        f'bearer = "{served.api_key}"\n'
        "[auth.openapi.caseworker]\n"
        f'bearer = "{served.token}"\n'
    )
    return path


@pytest.mark.parametrize("seed", [FIXED_SEED, RANDOM_SEED], ids=["fixed-seed", "random-seed"])
def test_server_and_document_agree(served: Served, seed: int, tmp_path: Path) -> None:
    """schemathesis with every check finds no request on which serve and its document disagree."""
    config = schemathesis_config(served, tmp_path)
    print(f"schemathesis seed: {seed}")
    # The live stream never ends, so a request/response tool cannot judge it;
    # tests/unit/test_inbox_api.py covers it.
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
               f"{served.url}/api/v1/openapi.json", "--checks", "all", "--seed", str(seed),
               "--max-examples", str(MAX_EXAMPLES), "--exclude-path", "/api/v1/stream",
               "--request-timeout", "10", "--no-color"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                            check=False)
    assert result.returncode == 0, (
        f"schemathesis (seed {seed}; replay with --seed {seed}) found a disagreement:\n"
        f"{result.stdout[-15000:]}\n{result.stderr[-3000:]}")

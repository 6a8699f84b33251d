"""The inbox on the real broker: worker notifications land in the right inbox once, survive a
restart of the service, and the live stream delivers a new one."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from advisering.dev.scenario import demo_scenario, event, synthetic_cpr
from advisering.http.server import create_web_app
from advisering.inbox import tokens
from advisering.settings import Settings
from tests.integration.bus import WorkerProcess, bus_env, run_cli, write_jsonl
from tests.integration.test_pipeline import scenario_citizens

SECRET = secrets.token_hex(32)


async def start_inbox(bootstrap: str, db: Path, group: str) -> TestClient[Any, Any]:
    settings = Settings(bootstrap_servers=bootstrap, token_secret=SECRET, inbox_db=db,
                        inbox_group=group)
    client = TestClient(TestServer(create_web_app(settings)))
    await client.start_server()
    return client


def bearer(caseworker: str, unit: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + tokens.issue(SECRET.encode(), caseworker, unit)}


async def mine(client: TestClient[Any, Any], caseworker: str, unit: str,
               citizens: set[str], want: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The viewer's notifications about ``citizens``, once at least ``want`` are there."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        reply = await client.get("/api/v1/notifications?limit=200",
                                 headers=bearer(caseworker, unit))
        assert reply.status == 200
        found = [n for n in (await reply.json())["items"] if n["citizen"] in citizens]
        if len(found) >= want:
            return found
        await asyncio.sleep(0.5)
    return found


async def test_notifications_reach_the_inbox_once_and_survive_restart(
    bootstrap: str, tmp_path: Path
) -> None:
    """Worker output lands in the right inbox once, keeps read state over a restart, and streams."""
    env = bus_env(bootstrap)
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    db, group = tmp_path / "inbox.sqlite3", f"inbox-test-{uuid.uuid4().hex[:8]}"
    citizens = scenario_citizens(env["ADVISERING_PSEUDONYM_KEY"])
    client = await start_inbox(bootstrap, db, group)
    try:
        for number, wave in enumerate(demo_scenario()):
            path = write_jsonl(tmp_path / f"wave-{number}.jsonl", wave)
            assert run_cli(env, "publish", str(path)).returncode == 0
            worker.wait_idle(bootstrap)
        bf = await mine(client, "bf-0042", "bf-syd", citizens, 2)
        assert sorted(n["rule"] for n in bf) == ["ny-boernesag-orientering",
                                                 "sanktion-til-boernesag"]
        school = await mine(client, "sk-9999", "pps", citizens, 1)
        assert [n["related_case"]["id"] for n in school] == ["SKOLE-2026-0042"]
        sanction = next(n for n in bf if n["rule"] == "sanktion-til-boernesag")
        reply = await client.post(f"/api/v1/notifications/{sanction['id']}/read",
                                  headers=bearer("bf-0042", "bf-syd"))
        assert reply.status == 200
        await client.close()

        # Restart: same database, same consumer group.
        client = await start_inbox(bootstrap, db, group)
        await asyncio.sleep(3)
        after = await mine(client, "bf-0042", "bf-syd", citizens, 2)
        assert sorted(n["id"] for n in after) == sorted(n["id"] for n in bf)
        assert next(n for n in after if n["id"] == sanction["id"])["read_at"]

        # The live stream delivers a new notification.
        token = tokens.issue(SECRET.encode(), "bf-0099", "bf-vest")
        stream = await client.get(f"/api/v1/stream?access_token={token}")
        assert stream.status == 200
        await stream.content.readline()
        new_case = {"id": f"DUBU-LIVE-{uuid.uuid4().hex[:6]}", "kle": "34.15.00",
                    "status": "opstaaet", "department": "boern-familie", "unit": "bf-vest",
                    "caseworker": "bf-0099"}
        # The parent of the scenario (open job-centre case) gets a new children's case.
        live = event(99, "dubu", "case.opened", dt.datetime.now(dt.UTC), synthetic_cpr(11),
                     new_case)
        live["id"] = str(uuid.uuid4())
        path = write_jsonl(tmp_path / "live.jsonl", [live])
        assert run_cli(env, "publish", str(path)).returncode == 0
        lines: list[bytes] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(b"data: " in x for x in lines):
            lines.append(await asyncio.wait_for(stream.content.readline(), 60))
        data = next(x for x in lines if x.startswith(b"data: "))
        assert b"ny-boernesag-orientering" in data
        assert new_case["id"].encode() in data
        stream.close()
    finally:
        await client.close()
        worker.stop()

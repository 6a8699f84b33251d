"""`advisering demo`: worker and HTTP ingest, the scenario through HTTP, a live simulation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.integration.bus import ROOT, bus_env, free_port, run_cli


def demo_env(bootstrap: str) -> dict[str, str]:
    return bus_env(bootstrap, ADVISERING_WORKER_WEB_PORT=str(free_port()),
                   ADVISERING_SERVE_PORT=str(free_port()),
                   ADVISERING_AUDIT_SINK_WEB_PORT=str(free_port()))


def test_demo_prints_readable_notifications(bootstrap: str) -> None:
    """The demo posts the scenario over HTTP and shows each notification with its why."""
    env = demo_env(bootstrap)
    result = run_cli(env, "demo", "--once", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # The test broker is used as it is; the demo's state is in the test session's folder.
    assert f"Kafka: {bootstrap} (not started by the demo; its data is kept)." in out
    demo_dir = Path(env["ADVISERING_DEMO_DIR"])
    assert (demo_dir / "inbox.sqlite3").is_file()
    assert (demo_dir / "sources.yaml").is_file()
    assert (demo_dir / "worker.log").is_file()
    assert f"its log: {demo_dir / 'serve.log'}" in out
    assert "Ingest: http://127.0.0.1:" in out
    assert "Kildesystemerne melder" in out
    assert "Til bf-0042 (børn og familie, bf-syd) om sag DUBU-2025-0815" in out
    assert "har fået en sanktion eller et stop af ydelse i jobcentret" in out
    assert "Hvorfor: Sanktion eller stop af ydelse" in out
    assert "hjemmel: Barnets lov" in out
    assert "Til enhed pps (skoleområdet, pps) om sag SKOLE-2026-0042" in out
    assert "Worker stopped." in out
    assert "HTTP ingest stopped." in out
    assert "Indbakken" in out
    assert "bf-0042 – børn og familie:" in out
    assert "/#token=" in out
    # The last scene: audit-sink stored the audit, and each citizen's insight is shown.
    assert "Audit sink stopped." in out
    for number, count in enumerate((3, 2, 1, 2, 2), start=1):
        assert f"Borger {number}: {count} advis (" in out
    letter = demo_dir / "indsigt-borger-1.html"
    assert 'lang="da"' in letter.read_text() and "sanktion-til-boernesag" in letter.read_text()


def test_demo_runs_the_simulation_live_until_ctrl_c(bootstrap: str) -> None:
    """After the scenario the simulated municipality keeps notifying; Ctrl-C stops it all."""
    process = subprocess.Popen(
        [sys.executable, "-m", "advisering.cli", "demo", "--rate", "200"],
        env=demo_env(bootstrap), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    live = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Tryk Ctrl-C" in line:
            live = len(lines)
        if live and sum(1 for x in lines[live:] if x.startswith("[")) >= 3:
            break
    # The printed inbox link works while the demo runs.
    link = next(x.strip() for x, prev in zip(lines[1:], lines, strict=False)
                if "bf-0042 – børn og familie" in prev)
    base, token = link.split("/#token=")
    request = urllib.request.Request(base + "/api/v1/notifications",
                                      headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        inbox = json.loads(reply.read())
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=90)
    out = "".join(lines) + rest
    assert live, out[-3000:]
    simulated = [x for x in lines[live:] if x.startswith("[")]
    assert len(simulated) >= 3, out[-3000:]
    assert process.returncode == 0, out[-3000:]
    assert "Stopper demoen" in out
    assert "Worker stopped." in out
    assert "HTTP ingest stopped." in out
    assert any(n["recipient"]["caseworker"] == "bf-0042" for n in inbox["items"])

"""`advisering demo --once` runs the worker, publishes the scenario and prints notifications."""

from __future__ import annotations

from tests.integration.bus import bus_env, free_port, run_cli


def test_demo_prints_readable_notifications(bootstrap: str) -> None:
    """The demo shows each kind of notification with its why, then stops its worker."""
    env = bus_env(bootstrap, ADVISERING_WORKER_WEB_PORT=str(free_port()))
    result = run_cli(env, "demo", "--once", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Kildesystemerne melder" in out
    assert "Til bf-0042 (børn og familie, bf-syd) om sag DUBU-2025-0815" in out
    assert "har fået en sanktion eller et stop af ydelse i jobcentret" in out
    assert "Hvorfor: Sanktion eller stop af ydelse" in out
    assert "hjemmel: Barnets lov" in out
    assert "Til enhed pps (skoleområdet, pps) om sag SKOLE-2026-0042" in out
    assert "Worker stopped." in out

"""Several serve processes: what the parent refuses before any child starts, and says why."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def serve(**settings: str) -> subprocess.CompletedProcess[str]:
    """`advisering serve` with two processes and ``settings``; it is expected to refuse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env.update({"ADVISERING_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                "ADVISERING_SERVE_PROCESSES": "2", "ADVISERING_PSEUDONYM_KEY": "k" * 64,
                **settings})
    return subprocess.run([sys.executable, "-m", "advisering.cli", "serve"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


def test_several_processes_with_the_inbox_are_refused_at_start() -> None:
    """The inbox keeps one SQLite file: processes > 1 with a token secret exits 2 and says why."""
    result = serve(ADVISERING_TOKEN_SECRET="s" * 40)
    assert result.returncode == 2
    assert "ADVISERING_TOKEN_SECRET" in result.stderr and "one process" in result.stderr
    assert "Traceback" not in result.stderr


def test_several_processes_need_the_pseudonym_key() -> None:
    """Without the ingest's key there is nothing to serve: exit 2 naming the setting."""
    result = serve(ADVISERING_PSEUDONYM_KEY="short")
    assert result.returncode == 2
    assert "ADVISERING_PSEUDONYM_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_refused_before_the_processes_share_it() -> None:
    """SO_REUSEPORT would share a port silently; the parent refuses one that has a listener."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = serve(ADVISERING_SERVE_PORT=str(port))
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr

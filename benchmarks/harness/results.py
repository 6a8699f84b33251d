"""What a results file records besides the figures: when, the command, the host, the code."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from harness import ROOT


def run_info(script: str, **host: Any) -> dict[str, Any]:
    """When, the command line and the host of this run (``host``: more about the host)."""
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", script, *sys.argv[1:]]),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform(), **host},
    }


def code_state() -> dict[str, Any]:
    """The commit measured and the files of advisering/ that differ from it (read-only git)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10, check=False).stdout.rstrip("\n")
        except (OSError, subprocess.TimeoutExpired):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "advisering").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "changed_files": changed}


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")

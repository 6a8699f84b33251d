"""The publishing edge: refuses to start without a key, and dead letters never hold a CPR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from advisering.dev.scenario import synthetic_cpr
from advisering.events import Rejection, RejectReason
from advisering.kafka.deadletters import dead_letter
from advisering.privacy import find_cprs

ROOT = Path(__file__).resolve().parents[2]


def test_publish_without_pseudonym_key_refuses_to_start(tmp_path: Path) -> None:
    """`advisering publish` without ADVISERING_PSEUDONYM_KEY exits 2 and says what is missing."""
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env["ADVISERING_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
    result = subprocess.run([sys.executable, "-m", "advisering.cli", "publish", str(events)],
                            env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
                            check=False)
    assert result.returncode == 2
    assert "ADVISERING_PSEUDONYM_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_short_pseudonym_key_refuses_to_start(tmp_path: Path) -> None:
    """A pseudonym key shorter than 32 bytes is refused before anything is published."""
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env.update(ADVISERING_BOOTSTRAP_SERVERS="127.0.0.1:1", ADVISERING_PSEUDONYM_KEY="too-short")
    result = subprocess.run([sys.executable, "-m", "advisering.cli", "publish", str(events)],
                            env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
                            check=False)
    assert result.returncode == 2
    assert "at least 32 bytes" in result.stderr


def test_dead_letter_redacts_cpr_also_inside_json_escapes() -> None:
    """A CPR written with JSON unicode escapes is still redacted in the dead letter."""
    cpr = synthetic_cpr(5).replace("-", "")
    escaped = "".join(f"\\u{ord(c):04x}" for c in cpr)
    payload = ('{"source": "momentum", "id": "x", "data": {"note": "' + escaped + '"}}').encode()
    rejection = Rejection(RejectReason.CPR_DETECTED, "data.note", "CPR number")
    key, value = dead_letter(rejection, payload, topic="t", partition=0, offset=1,
                             received="2026-11-29T00:00:00+00:00")
    record = orjson.loads(value)
    assert key == b"momentum"
    assert record["reason"] == "cpr_detected"
    assert not find_cprs(record["payload"])
    assert "[CPR-REDACTED]" in record["payload"]


def test_dead_letter_of_non_json_keeps_redacted_text() -> None:
    """A payload that is not JSON is kept as text with CPR numbers redacted and source unknown."""
    payload = f"broken {synthetic_cpr(6)} line".encode()
    rejection = Rejection(RejectReason.NOT_JSON, "", "not JSON")
    key, value = dead_letter(rejection, payload, topic="t", partition=None, offset=None,
                             received="2026-11-29T00:00:00+00:00")
    record = orjson.loads(value)
    assert key == b"unknown"
    assert record["payload"] == "broken [CPR-REDACTED] line"
    assert record["payload_truncated"] is False

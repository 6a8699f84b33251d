"""Cost per event of the CPR checks: the raw-bytes pre-check and the decoded walk.

A script, not a test (no timed assertions): it prints microseconds per event for
``json_may_hold_cpr`` (the worker intake's fast check on every record),
``cpr_paths`` (the walk over every key and value, done when the pre-check
cannot rule a CPR number out) and ``redact_value`` on the demo scenario's
pseudonymised events, on the same events with Danish free text (non-ASCII), and
the share of those events that the pre-check clears.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cpr_check.py
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from advisering.dev.scenario import demo_scenario
from advisering.edge.prepare import prepare_event
from advisering.events import CaseEvent, Vocabulary
from advisering.privacy import cpr_paths, json_may_hold_cpr, redact_value

KEY = b"k" * 32


def events() -> list[dict[str, Any]]:
    """The demo scenario's events, pseudonymised, with UUID ids (as real sources send)."""
    out = []
    for wave in demo_scenario():
        for raw in wave:
            event = prepare_event(raw, KEY, Vocabulary())
            assert isinstance(event, CaseEvent)
            value = event.model_dump(mode="json", exclude_none=True)
            value["id"] = str(uuid.uuid4())
            out.append(value)
    return out


def per_event_us(run: Callable[[], object], count: int, seconds: float = 1.0) -> float:
    """Microseconds per event of ``run`` (which handles ``count`` events), best of 5."""
    best = float("inf")
    for _ in range(5):
        loops, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds / 5:
            run()
            loops += 1
        best = min(best, (time.perf_counter() - began) / (loops * count))
    return best * 1e6


def report(name: str, sample: list[dict[str, Any]]) -> None:
    payloads = [orjson.dumps(e) for e in sample]
    cleared = sum(not json_may_hold_cpr(p) for p in payloads)
    print(f"{name}: {len(sample)} events, mean {sum(map(len, payloads)) // len(payloads)} "
          f"bytes, pre-check clears {cleared}/{len(payloads)}")
    runs: dict[str, Callable[[], object]] = {
        "json_may_hold_cpr": lambda: [json_may_hold_cpr(p) for p in payloads],
        "cpr_paths (walk)": lambda: [list(cpr_paths(e, "x")) for e in sample],
        "redact_value": lambda: [redact_value(e) for e in sample],
    }
    for label, run in runs.items():
        print(f"  {label:18} {per_event_us(run, len(sample)):8.2f} us/event")


def main() -> None:
    plain = [event for _ in range(20) for event in events()]
    danish = [dict(e, subject="Sag om Søren Ærø, børn og familie") for e in plain]
    report("pseudonymised events", plain)
    report("with Danish subject", danish)


if __name__ == "__main__":
    main()

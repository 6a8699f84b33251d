"""Where the worker's and the passthrough's CPU went, from their cProfile files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.profiles import read_profile, share_cell, share_of_busy

CATEGORIES = (
    ("/advisering/engine/", "advisering.engine"),
    ("/advisering/worker/", "advisering.worker"),
    ("/advisering/events.py", "advisering.events"),
    ("/advisering/", "advisering (other)"),
    ("/pydantic", "pydantic"),
    ("/prometheus_client/", "prometheus_client"),
    ("/faust/", "faust"),
    ("/mode/", "mode"),
    ("/aiokafka/", "aiokafka"),
    ("/asyncio/", "asyncio"),
    ("/venusian/", "faust"),
    ("/opentracing/", "faust"),
    ("/structlog/", "structlog"),
    ("/logging/", "logging"),
)


# In the builtins ("~"): by the function's name.
BUILTIN_CATEGORIES = (
    ("orjson", "orjson"), ("pydantic_core", "pydantic"), ("validate", "pydantic"),
    ("socket", "socket I/O"), ("recv", "socket I/O"), ("send", "socket I/O"),
)


# Where a worker's tasks spend their time: cumulative seconds of entry points
# (nested ones overlap: the agent bodies include their sends).
ENTRY_POINTS = (
    ("faust/agents/agent.py", "_slurp", "agents: stream iteration + bodies + sends"),
    ("advisering/worker/agent.py", "process", "  the worker's agent body"),
    ("benchmarks/faust_passthrough.py", "bare", "  passthrough agent body (bare)"),
    ("benchmarks/faust_passthrough.py", "batched", "  passthrough agent body (batched)"),
    ("advisering/worker/agent.py", "intake_record", "    a case event (validate, route)"),
    ("advisering/worker/steps.py", "intake", "      steps.intake (validate, CPR scan)"),
    ("advisering/worker/agent.py", "correlate_record", "    a repartition record"),
    ("advisering/worker/steps.py", "correlate", "      steps.correlate (engine, per copy)"),
    ("advisering/worker/agent.py", "outcome", "    records of the batch's outcome"),
    ("advisering/worker/agent.py", "save", "    state: changelog batch + store"),
    ("advisering/worker/sending.py", "send", "    batched sends (aiokafka batches)"),
    ("mode/utils/logging.py", "debug", "    `yield` in an agent: a debug line formatted"),
    ("prometheus_client/metrics.py", "labels", "    prometheus .labels() lookups"),
    ("faust/topics.py", "send", "    faust Topic.send"),
    ("faust/streams.py", "_c_aiter", "    faust stream iteration"),
    ("faust/streams.py", "take_events", "    faust take_events"),
    ("faust/transport/consumer.py", "_drain_messages", "faust consumer: fetch -> streams"),
    ("aiokafka/producer/sender.py", "_send_produce_req", "aiokafka: produce requests"),
    ("aiokafka/producer/sender.py", "_sender_routine", "aiokafka: sender loop"),
    ("faust/transport/producer.py", "_handle_pending", "faust producer buffer (send_soon)"),
    ("aiokafka/conn.py", "_read", "aiokafka: socket reads"),
    ("aiohttp/web_protocol.py", "_handle_request", "web (the benchmark's /metrics polls)"),
    ("faust/transport/consumer.py", "_commit_handler", "faust commits"),
)


def entry_points(raw: dict[Any, Any], busy: float) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for (filename, _line, function), (_cc, calls, _tt, cumtime, _callers) in raw.items():
        for suffix, name, label in ENTRY_POINTS:
            if function == name and filename.endswith(suffix):
                row = found.setdefault(label, {"seconds": 0.0, "calls": 0})
                row["seconds"] += cumtime
                row["calls"] += calls
    order = [label for _, _, label in ENTRY_POINTS]
    return {label: {"seconds": round(found[label]["seconds"], 3),
                    "share_of_busy": round(found[label]["seconds"] / busy, 3),
                    "calls": int(found[label]["calls"])}
            for label in order if label in found}


def summarise_profile(path: Path, top: int, events: int) -> dict[str, Any]:
    read = read_profile(
        path, CATEGORIES, BUILTIN_CATEGORIES, top,
        r"advisering|faust/(topics|streams|tables|agents)|aiokafka/(producer|consumer)")
    busy = read.busy
    table = {name: {"seconds": round(sec, 3), "share_of_busy": share_of_busy(name, sec, busy)}
             for name, sec in read.by_category.most_common()}
    return {"events": events, "total_s": round(read.total, 3), "busy_s": round(busy, 3),
            "by_category": table, "by_entry_point": entry_points(read.raw, busy),
            "top_tottime": read.top_tottime, "cumulative_selected": read.cumulative_selected}


def print_profile(title: str, summary: dict[str, Any]) -> None:
    events = summary["events"]
    print(f"\n--- cProfile of {title} while it worked off its backlog: CPU by package "
          f"(busy {summary['busy_s']} s for "
          f"{events} events = {summary['busy_s'] / events * 1e6:.0f} us/event) ---")
    for name, row in summary["by_category"].items():
        print(f"  {name:24s} {row['seconds']:8.3f} s  {share_cell(row)}")
    print("  by entry point (cumulative; indented rows are inside the row above):")
    for name, row in summary["by_entry_point"].items():
        print(f"  {name:48s} {row['seconds']:8.3f} s  {row['share_of_busy']:6.1%}  "
              f"{row['calls']:>8} calls")
    print(summary["top_tottime"])

"""Timing rounds and repeats, and latency percentiles.

The two benchmarks' latency figures keep their own percentile definitions
(``latency_figures``: index ``int(q * n)``; ``latency_summary``: nearest rank),
so their results stay comparable with earlier runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(passes: dict[str, Callable[[], dict[str, int]]], events: int,
          repeats: int) -> dict[str, dict[str, Any]]:
    """Best of ``repeats`` rounds of every pass, by wall time and by this process's CPU time.

    The passes take turns within each round, so a busy moment on a shared host
    hits them alike; the best of the rounds is the closest to a quiet core.
    """
    best = dict.fromkeys(passes, float("inf"))
    best_cpu = dict.fromkeys(passes, float("inf"))
    results: dict[str, dict[str, int]] = {}
    for _ in range(repeats):
        for name, fn in passes.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - began)
            best_cpu[name] = min(best_cpu[name], time.process_time() - began_cpu)
    return {name: {"events": events, "seconds": round(best[name], 4),
                   "events_per_s": round(events / best[name]),
                   "us_per_event": round(best[name] / events * 1e6, 2),
                   "events_per_cpu_s": round(events / best_cpu[name]),
                   "cpu_us_per_event": round(best_cpu[name] / events * 1e6, 2),
                   **results[name]}
            for name in passes}


def median_run(runs: list[dict[str, Any]], rate: str = "events_per_s") -> dict[str, Any]:
    """The run with the median ``rate``, with every run's rate as ``rounds_<rate>``."""
    ordered = sorted(runs, key=lambda run: run[rate])
    median = dict(ordered[len(ordered) // 2])
    median[f"rounds_{rate}"] = [run[rate] for run in runs]
    return median


def latency_figures(ordered_ms: list[float]) -> dict[str, Any]:
    """Percentiles, max, mean and count over 100 ms of ascending latencies (ms)."""
    def pct(q: float) -> float:
        return round(ordered_ms[min(len(ordered_ms) - 1, int(q * len(ordered_ms)))], 1)

    return {"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": round(ordered_ms[-1], 1), "mean_ms": round(statistics.mean(ordered_ms), 1),
            "over_100ms": sum(1 for x in ordered_ms if x > 100)}


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, int(-(-q * len(ordered) // 1)))  # ceil(q * n), at least 1
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    """Nearest-rank percentiles, max and mean (ms) of latencies given in seconds."""
    ordered = sorted(seconds)
    if not ordered:
        return {"count": 0}
    return {"count": len(ordered),
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
            "p90_ms": round(percentile(ordered, 0.90) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}

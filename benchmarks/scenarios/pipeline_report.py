"""The pipeline benchmark's ratios and printed table."""

from __future__ import annotations

import statistics
from typing import Any

from scenarios.engine import engine_rows, print_rows

TARGETS = {"engine_over_faust_passthrough": ">= 15", "bus_over_faust_passthrough": ">= 0.8"}


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The comparisons; the targets are judged on the median of the rounds' paired ratios."""
    engine = results["engine"]["engine"]
    passthrough = results["faust_passthrough"]["events_per_s"]
    bus = results["bus"]["throughput"]["events_per_s"]
    return {
        "engine_over_faust_passthrough": statistics.median(
            results["faust_passthrough"]["paired_engine_over_passthrough"]),
        "bus_over_faust_passthrough": statistics.median(
            results["bus"]["paired_bus_over_passthrough"]),
        "engine_over_faust_passthrough_best_vs_best": round(
            engine["events_per_s"] / passthrough, 2),
        "bus_over_faust_passthrough_best_vs_best": round(bus / passthrough, 3),
        "raw_over_faust_passthrough": round(results["raw"]["events_per_s"] / passthrough, 2),
        "validation_and_engine_over_faust_passthrough": round(
            results["engine"]["validation_and_engine"]["events_per_s"] / passthrough, 2),
        "bus_over_raw": round(bus / results["raw"]["events_per_s"], 4),
    }


def ratios_by_cpu(results: dict[str, Any]) -> dict[str, Any] | None:
    """The same comparison by CPU per event.

    Robust on a shared host: waiting for a CPU that another process holds does
    not count.
    """
    pass_cpu = results["faust_passthrough"]["cpu"].get("process_cpu_us_per_event")
    bus_cpu = results["bus"]["throughput"]["cpu"].get("process_cpu_us_per_event")
    if not (pass_cpu and bus_cpu):
        return None
    engine = results["engine"]["engine"]
    return {"engine_over_faust_passthrough": round(pass_cpu / engine["cpu_us_per_event"], 2),
            "bus_over_faust_passthrough": round(pass_cpu / bus_cpu, 3)}


def cpu_note(cpu: dict[str, Any], name: str) -> str:
    if f"{name}_cpu_s" not in cpu:
        return ""
    note = (f"{cpu[f'{name}_cpu_us_per_event']:.0f} us CPU/event, "
            f"{cpu[f'{name}_cpu_util']:.0%} busy")
    if "process_runqueue_wait" in cpu:
        note += f", {cpu['process_runqueue_wait']:.0%} waiting for a CPU"
    if "broker_cpu_util" in cpu:
        note += f"; broker {cpu['broker_cpu_util']:.0%}"
    note += f"; others {cpu['others_cores']:.2f} of {cpu['host_cores']} cores"
    return note


def kafka_rows(results: dict[str, Any]) -> list[tuple[str, int, str]]:
    bus = results["bus"]["throughput"]
    correlate = results["bus_correlate_only"]["throughput"]
    return [
        ("raw confluent-kafka consume -> produce", results["raw"]["events_per_s"],
         cpu_note(results["raw"]["cpu"], "loop")),
        ("bare Faust passthrough (1 agent)", results["faust_passthrough"]["events_per_s"],
         cpu_note(results["faust_passthrough"]["cpu"], "process")),
        ("advisering worker end to end", bus["events_per_s"],
         cpu_note(bus["cpu"], "process")),
        ("  worker, correlate hop alone (intake idle)", correlate["events_per_s"],
         cpu_note(correlate["cpu"], "process")),
    ]


def print_bus(results: dict[str, Any]) -> None:
    bus = results["bus"]["throughput"]
    latency = results["bus"].get("latency")
    if latency:
        print(f"{'bus latency publish -> notification':46s} {'':>10s}  "
              f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms "
              f"({latency['notified']}/{latency['published']} at {latency['rate_per_s']}/s)")
    print(f"\nbus: throughput by last output record {bus['events_per_s_by_last_output']} ev/s; "
          f"intake done after {bus['intake_done_s']} s of {bus['seconds']} s")
    print(f"bus: {bus['notifications']} notifications, {bus['audit_records']} audit records, "
          f"engine time inside the worker {bus['engine_seconds_in_worker']} s "
          f"({bus['engine_share_of_wall']:.0%} of wall)")


def print_ratios(results: dict[str, Any]) -> None:
    found = results["ratios"]
    paired_engine = results["faust_passthrough"]["paired_engine_over_passthrough"]
    paired_bus = results["bus"]["paired_bus_over_passthrough"]
    print(f"\nengine / faust passthrough = {found['engine_over_faust_passthrough']}x "
          f"(target >= 15x; median of the rounds' pairs {paired_engine}; best vs best "
          f"{found['engine_over_faust_passthrough_best_vs_best']}x)")
    print(f"bus    / faust passthrough = {found['bus_over_faust_passthrough']}x "
          f"(target >= 0.8x; median of the rounds' pairs {paired_bus}; best vs best "
          f"{found['bus_over_faust_passthrough_best_vs_best']}x)")
    print(f"raw    / faust passthrough = {found['raw_over_faust_passthrough']}x")
    print(f"intake validation + engine / faust passthrough = "
          f"{found['validation_and_engine_over_faust_passthrough']}x; "
          f"bus / raw loop = {found['bus_over_raw']}x")
    by_cpu = results.get("ratios_by_cpu_per_event")
    if by_cpu:
        print(f"by CPU per event: engine / passthrough = "
              f"{by_cpu['engine_over_faust_passthrough']}x, bus / passthrough = "
              f"{by_cpu['bus_over_faust_passthrough']}x")


def print_variants(results: dict[str, Any]) -> None:
    for name, variant in results.get("variants", {}).items():
        latency = variant["bus"].get("latency") or {}
        print(f"variant {name} {variant['env']}: passthrough "
              f"{variant['faust_passthrough']['events_per_s']:,} ev/s, bus "
              f"{variant['bus']['throughput']['events_per_s']:,} ev/s "
              f"(bus / its passthrough {variant['bus_over_faust_passthrough']}x, "
              f"/ baseline passthrough {variant['bus_over_baseline_passthrough']}x), "
              f"latency p50 {latency.get('p50_ms')} ms p99 {latency.get('p99_ms')} ms")


def print_table(results: dict[str, Any]) -> None:
    print_rows(engine_rows(results["engine"]) + kafka_rows(results))
    print_bus(results)
    print_ratios(results)
    print_variants(results)

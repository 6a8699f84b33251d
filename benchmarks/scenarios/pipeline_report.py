"""The pipeline benchmark's ratios and printed table."""

from __future__ import annotations

import statistics
from typing import Any

from scenarios.engine import engine_rows, print_rows

TARGETS = {"bus_over_raw": ">= 0.15 (stretch 0.2)", "bus_latency_p99_ms": "<= 33"}


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The comparisons: the median of the rounds' paired ratios, and best against best."""
    found: dict[str, Any] = {key: round(statistics.median(pairs), 3)
                             for key, pairs in results["paired"].items()}
    bus = results["bus"]["throughput"]["events_per_s"]
    passthrough = results["faust_passthrough"]["events_per_s"]
    found["bus_over_raw_best_vs_best"] = round(bus / results["raw"]["events_per_s"], 3)
    found["bus_over_faust_passthrough_best_vs_best"] = round(bus / passthrough, 3)
    found["engine_over_faust_passthrough_best_vs_best"] = round(
        results["engine"]["engine"]["events_per_s"] / passthrough, 2)
    found["validation_and_engine_over_faust_passthrough"] = round(
        results["engine"]["validation_and_engine"]["events_per_s"] / passthrough, 2)
    return found


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
    return [
        ("raw confluent-kafka loop (json loads+dumps)", results["raw"]["events_per_s"],
         cpu_note(results["raw"]["cpu"], "loop")),
        ("bare Faust passthrough (Topic.send)", results["faust_passthrough"]["events_per_s"],
         cpu_note(results["faust_passthrough"]["cpu"], "process")),
        ("batched Faust passthrough (no work)", results["faust_batched"]["events_per_s"],
         cpu_note(results["faust_batched"]["cpu"], "process")),
        ("advisering worker end to end", bus["events_per_s"],
         cpu_note(bus["cpu"], "process")),
    ]


def print_bus(results: dict[str, Any]) -> None:
    bus = results["bus"]["throughput"]
    latency = results["bus"].get("latency")
    if latency:
        print(f"{'bus latency publish -> notification':46s} {'':>10s}  "
              f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms "
              f"({latency['notified']}/{latency['published']} at {latency['rate_per_s']}/s)")
    print(f"\nbus: citizen copies {bus['direct']:.0f} processed in one hop, "
          f"{bus['repartitioned']:.0f} through the repartition topic")
    print(f"bus: {bus['notifications']} notifications, {bus['audit_records']} audit records, "
          f"engine time inside the worker {bus['engine_seconds_in_worker']} s "
          f"({bus['engine_share_of_wall']:.0%} of wall)")


def print_ratios(results: dict[str, Any]) -> None:
    found, paired = results["ratios"], results["paired"]
    print("\nratios: the median of the rounds' pairs [the pairs]; best vs best")
    rows = [("worker / raw loop", "bus_over_raw", "target >= 0.15x, stretch 0.2x"),
            ("worker / bare Faust passthrough", "bus_over_faust_passthrough", ""),
            ("worker / batched Faust passthrough", "bus_over_faust_batched", ""),
            ("batched passthrough / raw loop", "faust_batched_over_raw", "Faust's own ceiling"),
            ("engine / bare Faust passthrough", "engine_over_faust_passthrough", "")]
    for label, key, note in rows:
        best = found.get(f"{key}_best_vs_best")
        print(f"  {label:36s} {found[key]}x {paired[key]}"
              + (f"; best vs best {best}x" if best is not None else "")
              + (f"  ({note})" if note else ""))
    by_cpu = results.get("ratios_by_cpu_per_event")
    if by_cpu:
        print(f"by CPU per event: engine / passthrough = "
              f"{by_cpu['engine_over_faust_passthrough']}x, bus / passthrough = "
              f"{by_cpu['bus_over_faust_passthrough']}x")


def print_variants(results: dict[str, Any]) -> None:
    for name, variant in results.get("variants", {}).items():
        latency = variant["bus"].get("latency") or {}
        print(f"variant {name} {variant['env']}: worker "
              f"{variant['bus']['throughput']['events_per_s']:,} ev/s, worker / raw "
              f"{statistics.median(variant['paired']['bus_over_raw'])}x "
              f"{variant['paired']['bus_over_raw']}, latency p50 {latency.get('p50_ms')} ms "
              f"p99 {latency.get('p99_ms')} ms")


def print_table(results: dict[str, Any]) -> None:
    print_rows(engine_rows(results["engine"]) + kafka_rows(results))
    print_bus(results)
    print_ratios(results)
    print_variants(results)

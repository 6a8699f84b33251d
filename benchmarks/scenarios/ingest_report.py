"""The ingest benchmark's ratios and printed table."""

from __future__ import annotations

from typing import Any

from scenarios.ingest_scale import print_scale


def ratios(phases: dict[str, Any]) -> dict[str, Any]:
    direct = phases["direct"]["events_per_s"]
    return {
        "ingest_single_over_direct": round(phases["ingest_single"]["events_per_s"] / direct, 4),
        "ingest_batched_over_direct": round(phases["ingest_batched"]["events_per_s"] / direct,
                                            4),
        "ingest_single_over_direct_windowed": round(
            phases["ingest_single"]["events_per_s"] / phases["direct_windowed"]["events_per_s"],
            4),
    }


def _cpu_cell(cpu: dict[str, Any], name: str) -> str:
    row = cpu.get(name)
    return f"{row['us_per_event']:.0f}" if row else "-"


def _cores_cell(cores: float | None) -> str:
    return "-" if cores is None else f"{cores:.2f}"


def print_phases(results: dict[str, Any]) -> None:
    phases = results["phases"]
    print()
    print(f"{'phase':40s} {'events/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'server':>7s} "
          f"{'broker':>7s} {'client':>7s} {'others':>6s}")
    print(f"{'':40s} {'':>9s} {'':>8s} {'':>8s} {'us CPU per event':>23s} {'cores':>6s}")
    print("-" * 101)
    for name, label, latency_key in (
        ("ingest_single", "ingest, 1 event/request", "request_latency"),
        ("ingest_batched", f"ingest, {results['config']['batch']} events/request",
         "request_latency"),
        ("direct", "direct confluent-kafka (flood)", "delivery_latency"),
        ("direct_windowed", f"direct, <= {results['config']['concurrency']} in flight",
         "delivery_latency"),
    ):
        phase = phases.get(name)
        if phase is None:
            continue
        latency = phase[latency_key]
        cpu = phase["cpu"]
        print(f"{label:40s} {phase['events_per_s']:>9,} {latency['p50_ms']:>8.2f} "
              f"{latency['p99_ms']:>8.2f} {_cpu_cell(cpu, 'server'):>7s} "
              f"{_cpu_cell(cpu, 'broker'):>7s} {_cpu_cell(cpu, 'client'):>7s} "
              f"{_cores_cell(cpu['other_processes_cores']):>6s}")


def print_details(results: dict[str, Any]) -> None:
    phases = results["phases"]
    for name in ("direct", "direct_windowed"):
        phase = phases[name]
        print(f"{name}: {phase['records_per_produce_request']} records per ProduceRequest "
              f"({phase['produce_requests']} requests); events/s of each round "
              f"{phase['rounds_events_per_s']}")
    print("latency: ingest = HTTP request (send to 202 read); direct = produce() call to "
          "delivery callback, per record")
    for name in ("ingest_single", "ingest_batched"):
        phase = phases[name]
        by_thread = phase["cpu"].get("server", {}).get("by_thread_us_per_event", {})
        print(f"{name}: server CPU by thread (us/event) {by_thread} -> with a core of its own "
              f"the event loop would top out at {phase['event_loop_bound_events_per_s']:,} "
              f"events/s; server produce->ack "
              f"mean {phase['server_produce_to_ack_mean_ms']} ms of request p50 "
              f"{phase['request_latency']['p50_ms']} ms; {phase['requests']} requests at "
              f"{phase['requests_per_s']:,}/s; statuses {phase['statuses']}")


def print_ratios(results: dict[str, Any]) -> None:
    found = results["ratios"]
    print(f"\ningest single  / direct = {found['ingest_single_over_direct']}x events/s")
    print(f"ingest batched / direct = {found['ingest_batched_over_direct']}x events/s")
    if "ingest_single_over_direct_windowed" in found:
        print(f"ingest single  / direct <= {results['config']['concurrency']} in flight = "
              f"{found['ingest_single_over_direct_windowed']}x events/s")
    for name, variant in results.get("variants", {}).items():
        for phase in ("ingest_single", "ingest_batched"):
            row = variant[phase]
            print(f"variant {name} {phase}: {row['events_per_s']:,} events/s, request p50 "
                  f"{row['request_latency']['p50_ms']} ms p99 {row['request_latency']['p99_ms']}"
                  f" ms, server produce->ack mean {row['server_produce_to_ack_mean_ms']} ms, "
                  f"server {_cpu_cell(row['cpu'], 'server')} us CPU/event")


def print_table(results: dict[str, Any]) -> None:
    print_phases(results)
    print_details(results)
    print_ratios(results)
    if "scale_out" in results:
        print_scale(results["scale_out"])
    print_edge_steps(results["edge_us_per_event"])


def print_edge_steps(edge: dict[str, Any]) -> None:
    print(f"\nedge steps on one core, no HTTP, no Kafka (us per event, best of "
          f"{edge['repeats']} over {edge['events']} events):")
    for step, us in edge["us_per_event"].items():
        print(f"  {step:50s} {us:8.1f}")

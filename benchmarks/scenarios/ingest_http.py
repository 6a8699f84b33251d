"""Ingest scenarios 1 and 2: `advisering serve` under N concurrent HTTP clients.

One event per POST /api/v1/events (single), or B events of one source per
request (batched). Events/s accepted (202), request latency, the server's
own produce-to-ack time (from its /metrics) and the CPU of every party.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
from harness import log
from harness.cpu import ThreadCpuMeter
from harness.procfs import broker_pid
from harness.stats import latency_summary

from advisering.kafka.topics import CASE_EVENTS
from advisering.testing import end_offsets, kafka_at
from scenarios.ingest_server import Server
from scenarios.simulated import Request


async def _post_all(port: int, requests: list[Request], headers: dict[str, dict[str, str]],
                    concurrency: int, request_timeout: float) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/events"
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    accepted = 0
    pending = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=request_timeout)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        for request in pending:  # one shared iterator: each request is sent once
            began = time.perf_counter()
            try:
                async with session.post(url, data=request.body,
                                        headers=headers[request.source]) as response:
                    answer = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[0] += 1  # 0: no HTTP answer (connection error or timeout)
                if len(errors) < 5:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - began)
            statuses[status] += 1
            if status == 202:
                accepted += request.events
            elif len(errors) < 5:
                errors.append(f"{status}: {answer[:300]!r}")

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "latencies": latencies, "statuses": dict(statuses),
            "errors": errors, "accepted": accepted}


def post_all(port: int, requests: list[Request], headers: dict[str, dict[str, str]],
             concurrency: int, request_timeout: float, timeout: float) -> dict[str, Any]:
    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(
            _post_all(port, requests, headers, concurrency, request_timeout), timeout)

    return asyncio.run(bounded())


def _loop_bound(cpu: dict[str, Any]) -> int | None:
    """Events/s the server would reach with one core for its event loop (main thread)."""
    main_us = cpu.get("server", {}).get("by_thread_us_per_event", {}).get("main")
    return round(1e6 / main_us) if main_us else None


def warm_up(name: str, server: Server, warmup: list[Request],
            headers: dict[str, dict[str, str]], args: argparse.Namespace) -> None:
    """Send the unmeasured requests; every event must be accepted."""
    if not warmup:
        return
    done = post_all(server.port, warmup, headers, args.concurrency, args.request_timeout,
                    args.timeout)
    if done["accepted"] != sum(r.events for r in warmup):
        raise RuntimeError(f"{name}: warm-up not accepted: {done['statuses']} "
                           f"{done['errors']}")


def bench_ingest(name: str, server: Server, requests: list[Request], warmup: list[Request],
                 headers: dict[str, dict[str, str]], bootstrap: str,
                 args: argparse.Namespace) -> dict[str, Any]:
    events = sum(r.events for r in requests)
    warm_up(name, server, warmup, headers, args)
    server.check_alive()
    before = end_offsets(kafka_at(bootstrap), CASE_EVENTS)
    produce_before = server.produce_seconds()
    meter = ThreadCpuMeter(server.pid, broker_pid(bootstrap))
    meter.start()
    server.profile(on=True)
    done = post_all(server.port, requests, headers, args.concurrency, args.request_timeout,
                    args.timeout)
    server.profile(on=False)
    cpu = meter.stop(events)
    produce_after = server.produce_seconds()
    after = end_offsets(kafka_at(bootstrap), CASE_EVENTS)
    written = sum(after.values()) - sum(before.values())
    server.check_alive()
    produce_count = produce_after[1] - produce_before[1]
    produce_mean_ms = ((produce_after[0] - produce_before[0]) / produce_count * 1000
                       if produce_count else None)
    if done["accepted"] != events or written < done["accepted"]:
        log(f"  WARNING {name}: {done['accepted']} of {events} accepted, {written} on the "
            f"topic; statuses {done['statuses']}; {done['errors'][:3]}")
    return {
        "requests": len(requests), "events": events,
        "events_per_request": round(events / len(requests), 1),
        "concurrency": args.concurrency, "accepted": done["accepted"],
        "written_to_topic": written, "errors": done["errors"],
        "statuses": {str(k): v for k, v in done["statuses"].items()},
        "seconds": round(done["seconds"], 3),
        "events_per_s": round(done["accepted"] / done["seconds"]),
        "requests_per_s": round(len(done["latencies"]) / done["seconds"]),
        "request_latency": latency_summary(done["latencies"]),
        "event_loop_bound_events_per_s": _loop_bound(cpu),
        "server_produce_to_ack_mean_ms": (round(produce_mean_ms, 2)
                                          if produce_mean_ms is not None else None),
        "cpu": cpu,
    }

"""Scenario 3: the Faust passthroughs (benchmarks/faust_passthrough.py) as subprocesses.

``bare``: one agent, ``await topic.send`` per record, Faust's defaults.
``batched``: the worker's batches and batched sends, no work. Their rate runs
from the first to the last CreateTime on their output topic.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from harness import ROOT
from harness.children import Subprocess, child_env, free_port, python_argv, running
from harness.cpu import ProcessCpuMeter
from harness.kafka import (
    PARTITIONS,
    assigned_consumer,
    create_topics,
    delete_app_topics,
    delete_topics,
)
from harness.procfs import broker_pid

PASSTHROUGH_APP = ROOT / "benchmarks" / "faust_passthrough.py"


def passthrough_process(bootstrap: str, app_id: str, workdir: Path, topic_in: str,
                        topic_out: str, profile_to: Path | None = None,
                        extra_env: dict[str, str] | None = None) -> Subprocess:
    port = free_port()
    env = child_env({"BENCH_APP_ID": app_id, "BENCH_BOOTSTRAP": bootstrap, "BENCH_IN": topic_in,
                     "BENCH_OUT": topic_out, "BENCH_WEB_PORT": str(port),
                     "BENCH_DATA_DIR": str(workdir / f"{app_id}-data"),
                     "BENCH_PARTITIONS": str(PARTITIONS), **(extra_env or {})})
    argv = python_argv(profile_to, str(PASSTHROUGH_APP))
    return Subprocess(app_id, argv, env, workdir / f"{app_id}.log", port, profile_to)


def watch_output(bootstrap: str, topic: str, n: int, proc: Subprocess,
                 timeout: float) -> dict[str, Any]:
    """Wait until ``topic`` has ``n`` records; rate from the first to the last CreateTime."""
    consumer = assigned_consumer(bootstrap, {topic: dict.fromkeys(range(PARTITIONS), 0)})
    meter = ProcessCpuMeter({"process": proc.process.pid if proc.process else None,
                             "broker": broker_pid(bootstrap)})
    count = 0
    first_ts = float("inf")
    last_ts = 0.0
    spawned = time.time()
    deadline = time.monotonic() + timeout
    try:
        while count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.name}: {count} of {n} records within {timeout}s\n"
                                   f"{proc.log_tail()}")
            proc.check_alive()
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                if message.error():
                    continue
                if count == 0:
                    meter.start()
                    proc.profile_start()
                count += 1
                stamp = message.timestamp()[1] / 1000.0
                first_ts = min(first_ts, stamp)
                last_ts = max(last_ts, stamp)
        cpu = meter.stop(count)
        proc.profile_stop()
    finally:
        consumer.close()
    seconds = max(last_ts - first_ts, 1e-3)
    return {"events": count, "seconds": round(seconds, 3), "events_per_s": round(count / seconds),
            "startup_s": round(first_ts - spawned, 2), "cpu": cpu}


def bench_passthrough(bootstrap: str, topic_in: str, n: int, workdir: Path, timeout: float,
                      profile_to: Path | None = None, extra_env: dict[str, str] | None = None,
                      mode: str = "bare") -> dict[str, Any]:
    """One run of the ``bare`` or ``batched`` passthrough over the preloaded ``topic_in``."""
    suffix = uuid.uuid4().hex[:8]
    topic_out = f"bench-faust-out-{suffix}"
    create_topics(bootstrap, [topic_out])
    proc = passthrough_process(bootstrap, f"bench-passthrough-{mode}-{suffix}", workdir,
                               topic_in, topic_out, profile_to,
                               {"BENCH_MODE": mode, **(extra_env or {})})
    try:
        with running(proc):
            result = watch_output(bootstrap, topic_out, n, proc, timeout)
    finally:
        delete_topics(bootstrap, [topic_out])
        delete_app_topics(bootstrap, proc.name)
    result["topic_out"] = topic_out
    return result

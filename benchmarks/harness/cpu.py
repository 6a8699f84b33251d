"""CPU used during a measured phase, by the measured process, the broker and the host.

Two shapes, one per benchmark, so their results files keep their keys:
``ProcessCpuMeter`` (pipeline: whole processes, the event loop's wait for a
CPU) and ``ThreadCpuMeter`` (ingest: the server by thread group).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import log
from harness.procfs import (
    broker_pid,
    child_pids,
    cpu_seconds,
    host_busy_seconds,
    host_cpu,
    runqueue_wait,
    self_cpu,
    stat_cpu_seconds,
    threads_cpu,
)


@dataclass
class ProcessCpuMeter:
    """CPU between start() and stop(): the measured processes, the broker, this script, the host.

    ``<name>_runqueue_wait`` (for each name in ``loops``) is the share of the
    wall time the process's main thread (the event loop) was runnable but not
    running: waiting for a CPU that others held. ``others_cores`` is what the
    rest of the machine used.
    """

    pids: dict[str, int | None]
    # The processes whose main thread (their event loop) is read apart: CPU and run-queue wait.
    loops: tuple[str, ...] = ("process",)
    began: dict[str, float | None] = field(default_factory=dict)
    began_host: tuple[float, float] = (0.0, 0.0)
    began_wait: dict[str, float | None] = field(default_factory=dict)
    wall: float = 0.0

    def _snapshot(self) -> dict[str, float | None]:
        pids = dict(self.pids, bench=os.getpid())
        found = {name: cpu_seconds(pid) for name, pid in pids.items()}
        for name in self.loops:
            pid = self.pids.get(name)
            if pid is not None:  # the event loop's own thread (the rest: librdkafka, GC...)
                found[f"{name}_main_thread"] = cpu_seconds(pid, pid)
        return found

    def _waits(self) -> dict[str, float | None]:
        return {name: runqueue_wait(self.pids.get(name)) for name in self.loops}

    def start(self) -> None:
        self.began = self._snapshot()
        self.began_host = host_cpu()
        self.began_wait = self._waits()
        self.wall = time.monotonic()

    def stop(self, events: int) -> dict[str, Any]:
        wall = max(time.monotonic() - self.wall, 1e-6)
        now = self._snapshot()
        busy, total = (a - b for a, b in zip(host_cpu(), self.began_host, strict=True))
        cores = os.cpu_count() or 1
        host_busy = busy / total * cores if total > 0 else 0.0
        out: dict[str, Any] = {"wall_s": round(wall, 3), "host_busy_cores": round(host_busy, 2),
                               "host_cores": cores}
        mine = 0.0
        for name in now:
            if now[name] is None or self.began.get(name) is None:
                continue
            used = float(now[name] or 0.0) - float(self.began[name] or 0.0)
            mine += 0.0 if name.endswith("_main_thread") else used
            out[f"{name}_cpu_s"] = round(used, 3)
            out[f"{name}_cpu_util"] = round(used / wall, 2)
            out[f"{name}_cpu_us_per_event"] = round(used / events * 1e6, 1)
        out["others_cores"] = round(max(0.0, host_busy - mine / wall), 2)
        for name, waited in self._waits().items():
            began = self.began_wait.get(name)
            if waited is not None and began is not None:
                out[f"{name}_runqueue_wait"] = round((waited - began) / wall, 3)
        return out


class ThreadCpuMeter:
    """CPU of the server (by thread group), the broker, this client and the host.

    With several server processes (a parent and its children), ``server_pid``
    is the parent and the children's threads count too (their main threads
    together as "main").
    """

    def __init__(self, server_pid: int | None, broker: int | None) -> None:
        self.server_pid = server_pid
        self.server_pids = [server_pid, *child_pids(server_pid)] if server_pid else []
        self.broker = broker
        self._began: dict[str, Any] = {}

    def _server(self) -> dict[str, float]:
        groups: dict[str, float] = {}
        for pid in self.server_pids:
            for group, used in threads_cpu(pid).items():
                groups[group] = groups.get(group, 0.0) + used
        return groups

    def _sample(self) -> dict[str, Any]:
        broker = stat_cpu_seconds(Path(f"/proc/{self.broker}/stat")) if self.broker else None
        return {"wall": time.monotonic(), "server": self._server(),
                "broker": broker,
                "client": self_cpu(), "host": host_busy_seconds()}

    def start(self) -> None:
        self._began = self._sample()

    def stop(self, events: int) -> dict[str, Any]:
        now, then = self._sample(), self._began
        wall = now["wall"] - then["wall"]
        out: dict[str, Any] = {"wall_s": round(wall, 3), "host_cores": os.cpu_count()}

        def row(name: str, used: float) -> None:
            out[name] = {"cpu_s": round(used, 3), "cores": round(used / wall, 2),
                         "us_per_event": round(used / events * 1e6, 1)}

        if now["server"]:
            groups = {g: now["server"].get(g, 0.0) - then["server"].get(g, 0.0)
                      for g in now["server"]}
            row("server", sum(groups.values()))
            out["server"]["by_thread_us_per_event"] = {
                g: round(v / events * 1e6, 1) for g, v in sorted(groups.items())}
        if now["broker"] is not None and then["broker"] is not None:
            row("broker", now["broker"] - then["broker"])
        row("client", now["client"] - then["client"])
        row("host", now["host"] - then["host"])
        ours = sum(out[k]["cpu_s"] for k in ("server", "broker", "client") if k in out)
        # /proc counts in clock ticks (10 ms): too coarse for a very short phase.
        out["other_processes_cores"] = (round((out["host"]["cpu_s"] - ours) / wall, 2)
                                        if wall >= 0.5 else None)
        return out


def wait_quiet(bootstrap: str, timeout: float, threshold: float = 0.25) -> float:
    """Wait until processes other than this one and the broker use < ``threshold`` cores."""
    deadline = time.monotonic() + timeout
    while True:
        meter = ThreadCpuMeter(None, broker_pid(bootstrap))
        meter.start()
        time.sleep(2.0)
        others = float(meter.stop(1)["other_processes_cores"] or 0.0)
        if others < threshold or time.monotonic() > deadline:
            log(f"  other processes use {others:.2f} cores"
                + ("" if others < threshold else f" (still, after {timeout:.0f}s; going on)"))
            return others

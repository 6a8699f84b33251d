"""CPU readings from /proc: of a process, of its threads, of the whole host."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from advisering.settings import Settings

TICK = os.sysconf("SC_CLK_TCK")


def stat_cpu_seconds(path: Path) -> float | None:
    """User + system CPU seconds from a /proc .../stat file (None when it is gone)."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(pid: int | None, thread: int | None = None) -> float | None:
    """User + system CPU seconds of a process (all threads), or of one of its threads."""
    if pid is None:
        return None
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    return stat_cpu_seconds(Path(path))


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the local broker started by `advisering kafka start` on this port."""
    host, _, port = bootstrap.partition(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return None
    pid_file = Settings(kafka_port=int(port)).broker_state_dir / "broker.pid"
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def threads_cpu(pid: int | None) -> dict[str, float]:
    """CPU seconds of a process by thread group: the main thread, librdkafka, the rest."""
    if pid is None:
        return {}
    groups: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        task = Path(f"/proc/{pid}/task/{tid}")
        used = stat_cpu_seconds(task / "stat")
        if used is None:
            continue
        try:
            comm = (task / "comm").read_text().strip()
        except OSError:
            comm = "?"
        group = ("main" if int(tid) == pid else "librdkafka" if comm.startswith("rdk:")
                 else "other threads")
        groups[group] = groups.get(group, 0.0) + used
    return groups


def child_pids(pid: int | None) -> list[int]:
    """The direct children of ``pid`` (Linux /proc/<pid>/task/<pid>/children)."""
    if pid is None:
        return []
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on ``port`` (one per process sharing it with SO_REUSEPORT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == "0A" and fields[1].endswith(f":{port:04X}"):
                count += 1
    return count


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return (0.0, 0.0)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle, sum(fields[:8]))


def host_busy_seconds() -> float:
    """CPU seconds the whole host spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / TICK


def runqueue_wait(pid: int | None) -> float | None:
    """Seconds the main thread of ``pid`` spent runnable but waiting for a CPU."""
    if pid is None:
        return None
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(pid: int | None, busy: float = 0.15, timeout: float = 15.0) -> None:
    """Wait (at most ``timeout``) until ``pid`` uses under ``busy`` of a core for 0.5 s."""
    deadline = time.monotonic() + timeout
    while pid is not None and time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        after = cpu_seconds(pid)
        if before is None or after is None or (after - before) / 0.5 < busy:
            return


def rss_bytes(pid: int | None) -> int | None:
    """Resident set size of a process (VmRSS in /proc/<pid>/status), None when it is gone."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def open_fds(pid: int | None) -> int | None:
    """How many file descriptors a process holds open (/proc/<pid>/fd), None when unreadable."""
    if pid is None:
        return None
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None

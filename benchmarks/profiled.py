"""Run a Python module or script under cProfile, switched on and off by signals.

    python benchmarks/profiled.py OUT.prof -m advisering.cli worker
    python benchmarks/profiled.py OUT.prof benchmarks/faust_passthrough.py

The profiler counts the CPU time of the thread that runs the event loop
(``time.thread_time``), not wall time: on a shared host, time spent waiting
for a CPU would otherwise land in whatever syscall woke another process.
The profiler starts switched off; SIGRTMIN switches it on and SIGRTMIN+1 switches
it off and writes OUT.prof. pipeline.py sends them when a worker starts and
finishes its backlog, so start-up, rebalancing and shutdown stay out of the
profile. (mode's Worker owns SIGINT, SIGTERM, SIGUSR1 and SIGUSR2.)
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from pathlib import Path
from typing import Any

START = signal.SIGRTMIN
STOP = signal.SIGRTMIN + 1


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    target = sys.argv[2:]
    profiler = cProfile.Profile(time.thread_time)

    def start(_signum: int, _frame: Any) -> None:
        profiler.enable()

    def stop(_signum: int, _frame: Any) -> None:
        profiler.disable()
        profiler.dump_stats(str(out))

    signal.signal(START, start)
    signal.signal(STOP, stop)
    if target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(target)
        sys.path.insert(0, str(Path(target[0]).resolve().parent))
        runpy.run_path(target[0], run_name="__main__")


if __name__ == "__main__":
    main()

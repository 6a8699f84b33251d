"""What the benchmarks share: /proc readings, child processes, Kafka set-up, statistics.

Imported as ``harness`` by the scripts in benchmarks/: Python puts a script's
own directory first on ``sys.path``, so ``.venv/bin/python benchmarks/pipeline.py``
finds this package (and ``scenarios`` beside it) without installing anything.
"""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

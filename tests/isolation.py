"""The test suite's own state directory, so that no test writes into the user's cache.

Without it, every `advisering demo`, `serve` and `worker` a test starts with
default settings wrote into ``~/.cache/advisering`` (the demo's inbox there
was then shown by the user's next `make demo`). ``tests/conftest.py`` points
the variables below at a directory of the test session's own, before any
test runs; :func:`tests.integration.bus.bus_env` hands them on to the
processes the tests start. Only the Kafka jars stay shared
(``ADVISERING_KAFKA_CACHE_DIR``: 100+ MB from Maven Central), and
``scripts/test.sh`` keeps the test broker's data out of the cache too.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Every setting whose default lies in the user's cache and that a test may write to.
ISOLATED = ("ADVISERING_DEMO_DIR", "ADVISERING_INBOX_DB", "ADVISERING_WORKER_DATA_DIR")


def state_env(root: Path) -> dict[str, str]:
    """The isolated settings, each inside ``root``."""
    return {
        "ADVISERING_DEMO_DIR": str(root / "demo"),
        "ADVISERING_INBOX_DB": str(root / "inbox.sqlite3"),
        "ADVISERING_WORKER_DATA_DIR": str(root / "worker"),
    }


def inherited() -> dict[str, str]:
    """The isolated settings as this test process has them (set by tests/conftest.py)."""
    return {name: os.environ[name] for name in ISOLATED if name in os.environ}

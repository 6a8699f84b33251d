"""Where `advisering demo` keeps its state, and why every run starts from nothing.

Each run of the demo generates a new pseudonym key, so the same scenario
citizens get new pseudonyms and their notifications new ids. Had the demo
kept the previous run's inbox database, broker data and worker state, a
second run would show every scenario notification twice (under old and new
ids) and leave the previous run's overviews orphaned in the worker's table.
Keeping the key instead would make a second run show nothing at all: the
scenario's and the simulator's event ids repeat, and the bus rightly ignores
events it has seen. So the demo starts fresh: :func:`start_fresh` clears the
inbox database, the sources file and the worker's data in
``ADVISERING_DEMO_DIR``, and the broker the demo starts itself keeps its data
there too and is started on empty data. A broker that already runs (or a
remote cluster) is used as it is: the demo never deletes data it does not
own, and its consumer groups resume where the last run stopped, so the new
inbox receives only this run's notifications.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from advisering.dev.local_kafka import LocalKafka
from advisering.kafka.clients import broker_answers
from advisering.kafka.connection import KafkaConnection
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class DemoPaths:
    """The demo's files and folders, all inside ``ADVISERING_DEMO_DIR``."""

    root: Path

    @property
    def inbox_db(self) -> Path:
        """The demo inbox's SQLite database."""
        return self.root / "inbox.sqlite3"

    @property
    def sources(self) -> Path:
        """The demo's source systems with their API keys (new keys every run)."""
        return self.root / "sources.yaml"

    @property
    def worker_data(self) -> Path:
        """The demo worker's Faust data directory."""
        return self.root / "worker"

    @property
    def rules_keys(self) -> Path:
        """The demo's rule-signing key pair (kept across runs: it holds no citizen data)."""
        return self.root / "rules-keys"

    @property
    def kafka(self) -> Path:
        """The data and log of the broker the demo starts itself."""
        return self.root / "kafka"

    def log_file(self, verb: str) -> Path:
        """The log of the demo's `advisering <verb>` child (kept across runs, appended)."""
        return self.root / f"{verb}.log"


def demo_paths(settings: Settings) -> DemoPaths:
    """The demo's paths for these settings."""
    return DemoPaths(settings.demo_dir)


def start_fresh(paths: DemoPaths) -> None:
    """Remove what a previous run left: the inbox database, the sources file, the worker's data.

    Only these named entries are removed (never the folder itself, which an
    operator may have pointed anywhere); the children's logs are kept.
    """
    paths.root.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        paths.inbox_db.with_name(paths.inbox_db.name + suffix).unlink(missing_ok=True)
    paths.sources.unlink(missing_ok=True)
    if paths.worker_data.exists():
        shutil.rmtree(paths.worker_data)
    log.info("demo_state_cleared", demo_dir=str(paths.root))


def own_broker(settings: Settings, paths: DemoPaths) -> LocalKafka:
    """The local broker the demo runs itself, with its data in the demo's folder."""
    return LocalKafka(settings.model_copy(update={"kafka_state_dir": paths.kafka}))


def start_broker(settings: Settings, paths: DemoPaths) -> tuple[LocalKafka | None, str]:
    """Start the demo's own broker on empty data, unless another broker serves.

    Returns the broker started (None when the demo uses one it does not own)
    and a line for the person watching. The demo's own broker still running (a
    run killed before its clean-up) is restarted on empty data too; a broker
    the demo does not own, local or remote, is used as it is.
    """
    if not settings.uses_local_broker():
        return None, (f"Kafka: {settings.bootstrap_servers} (not started by the demo; "
                      "its data is kept).")
    broker = own_broker(settings, paths)
    if not broker.status().running and broker_answers(
            KafkaConnection.from_settings(settings), timeout=2.0):
        return None, (f"Kafka already runs at {settings.bootstrap_servers}; the demo uses it "
                      "and keeps its data (stop it for a demo on an empty broker).")
    return broker, broker.start(fresh=True).message

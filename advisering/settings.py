"""The one settings object.

Built once at start-up from ``ADVISERING_*`` environment variables and passed
down; nothing else in the package reads ``os.environ``. Frozen so that no part
can change what another part was configured with.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_PSEUDONYM_KEY_BYTES = 32


def default_cache_dir() -> Path:
    """``~/.cache/advisering``: read when settings are built, so importing reads no home."""
    return Path.home() / ".cache" / "advisering"


class Settings(BaseSettings):
    """Every knob advisering has; see the README for what each one does."""

    model_config = SettingsConfigDict(env_prefix="ADVISERING_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field(
        default="",
        description="Kafka bootstrap servers; empty means the local broker on kafka_port.",
    )
    pseudonym_key: SecretStr | None = None
    rules_dir: Path = Path("rules")
    topics_dir: Path = Path("topics")

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    kafka_port: int = Field(default=9092, ge=1024, le=65534)
    kafka_cache_dir: Path = Field(default_factory=default_cache_dir)
    kafka_state_dir: Path | None = None
    kafka_heap: str = "768m"
    kafka_start_timeout: float = Field(default=90.0, gt=0)

    worker_app_id: str = "advisering-worker"
    worker_store: str = Field(default="memory://", pattern=r"^(memory|rocksdb|aerospike)://")
    worker_partitions: int = Field(default=6, ge=1)
    worker_replication_factor: int | None = Field(default=None, ge=1)
    worker_web_host: str = "127.0.0.1"
    worker_web_port: int = Field(default=6066, ge=1, le=65535)
    worker_data_dir: Path = Field(default_factory=lambda: default_cache_dir() / "worker")
    worker_commit_interval: float = Field(default=2.8, gt=0)
    worker_session_timeout: float = Field(default=30.0, ge=6)
    # Failures and shutdown (README "Failures, shutdown and health").
    worker_shutdown_grace: float = Field(default=20.0, gt=0, le=3600)
    worker_crash_stop_timeout: float = Field(default=5.0, gt=0, le=600)
    worker_crash_exit_delay: float = Field(default=0.0, ge=0, le=86400)
    rules_record_max_bytes: int = Field(default=262_144, ge=1024, le=16_777_216)
    kafka_log_interval: float = Field(default=10.0, ge=0, le=3600)
    worker_batch_max: int = Field(default=1000, ge=1, le=100_000)
    worker_batch_seconds: float = Field(default=0.01, gt=0, le=5)
    # Bounded state per citizen (README "Bounded state per citizen"; the same
    # defaults as advisering/engine/limits.py, which a test checks).
    citizen_max_open_cases: int = Field(default=100, ge=1)
    citizen_max_seen_events: int = Field(default=2000, ge=1)
    citizen_max_tombstones: int = Field(default=200, ge=1)
    citizen_max_sent_notifications: int = Field(default=500, ge=1)
    citizen_max_throttle_windows: int = Field(default=200, ge=1)
    # Below the changelog topic's max.message.bytes (Kafka's default: 1 MiB).
    citizen_max_state_bytes: int = Field(default=524_288, ge=1024, le=1_000_000)

    serve_host: str = "127.0.0.1"
    serve_port: int = Field(default=8080, ge=1, le=65535)
    sources_file: Path = Path("sources.yaml")
    # How long a rotated-out API key stays valid (`sources add --rotate`), and how
    # often serve and the worker look for a changed sources file.
    sources_rotation_grace: dt.timedelta = Field(
        default=dt.timedelta(hours=24), ge=dt.timedelta(0), le=dt.timedelta(days=30))
    sources_reload_seconds: float = Field(default=1.0, ge=0, le=60)
    ingest_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    ingest_max_events: int = Field(default=1000, ge=1)
    ingest_delivery_timeout: float = Field(default=10.0, gt=0)
    # What one event may hold (README "What an event may hold"): checked at the
    # ingest, by the publisher and by the worker alike.
    json_max_depth: int = Field(default=32, ge=2, le=200)
    event_max_parties: int = Field(default=20, ge=1, le=1000)

    token_secret: SecretStr | None = None
    inbox_db: Path = Field(default_factory=lambda: default_cache_dir() / "inbox.sqlite3")
    inbox_group: str = "advisering-inbox"
    inbox_retention_days: float = Field(default=30.0, gt=0)
    case_urls: dict[str, str] = Field(
        default_factory=dict,
        description='source -> URL pattern with {id}, e.g. {"dubu": "https://dubu.example/sag/{id}"}',
    )
    channels_file: Path | None = None

    topic_replication_factor: int | None = Field(default=None, ge=1)
    topic_partitions: int | None = Field(default=None, ge=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _defaults_from_port(self) -> Settings:
        # Frozen models can still fill derived defaults during validation.
        if not self.bootstrap_servers:
            object.__setattr__(self, "bootstrap_servers", f"127.0.0.1:{self.kafka_port}")
        if self.kafka_state_dir is None:
            object.__setattr__(
                self, "kafka_state_dir", self.kafka_cache_dir / f"broker-{self.kafka_port}"
            )
        return self

    @property
    def broker_state_dir(self) -> Path:
        """Where the local broker keeps its data, logs and pid file."""
        assert self.kafka_state_dir is not None  # filled by the validator
        return self.kafka_state_dir

    @property
    def local_bootstrap(self) -> str:
        """The address the local development broker listens on."""
        return f"127.0.0.1:{self.kafka_port}"

    def uses_local_broker(self) -> bool:
        """True when the configured cluster is the local development broker."""
        local = {f"127.0.0.1:{self.kafka_port}", f"localhost:{self.kafka_port}"}
        servers = {s.strip() for s in self.bootstrap_servers.split(",") if s.strip()}
        return servers <= local

    def pseudonym_key_bytes(self) -> bytes:
        """The pseudonym key, or a clear error for the publishing edge to show."""
        if self.pseudonym_key is None:
            raise MissingPseudonymKeyError(
                "ADVISERING_PSEUDONYM_KEY is not set: the publishing edge needs the "
                "municipality's secret key (at least 32 bytes) to pseudonymise CPR numbers."
            )
        key = self.pseudonym_key.get_secret_value().encode()
        if len(key) < MIN_PSEUDONYM_KEY_BYTES:
            raise MissingPseudonymKeyError(
                f"ADVISERING_PSEUDONYM_KEY is {len(key)} bytes; it must be at least "
                f"{MIN_PSEUDONYM_KEY_BYTES} bytes (for example: openssl rand -hex 32)."
            )
        return key


    def token_secret_bytes(self) -> bytes | None:
        """The inbox's token signing secret, when the inbox is enabled."""
        if self.token_secret is None:
            return None
        return self.token_secret.get_secret_value().encode()


class MissingPseudonymKeyError(RuntimeError):
    """The publishing edge cannot start without a usable pseudonym key."""


def load_settings() -> Settings:
    """Read the settings from the environment, once, at start-up."""
    return Settings()

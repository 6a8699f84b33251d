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
from pydantic_settings import SettingsConfigDict

from advisering.caselinks import check_pattern
from advisering.settings_audit import AuditSettings
from advisering.settings_kafka import KafkaSecuritySettings
from advisering.settings_signing import RulesSigningSettings
from advisering.settings_store import InboxStoreSettings, default_cache_dir
from advisering.settings_tokens import InboxTokenSettings

MIN_PSEUDONYM_KEY_BYTES = 32


class Settings(RulesSigningSettings, KafkaSecuritySettings, InboxTokenSettings, AuditSettings,
               InboxStoreSettings):
    """Every knob advisering has; each description is the row of docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="ADVISERING_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field(
        default="",
        description="the Kafka cluster; empty means the local broker, `127.0.0.1:<kafka port>`",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="the municipality's HMAC key for CPR pseudonyms (at least 32 bytes)",
    )
    rules_dir: Path = Field(default=Path("rules"), description="rule files")
    topics_dir: Path = Field(default=Path("topics"), description="topic files")

    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="`json`, `console`, or `auto` (JSON unless stderr is a terminal)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR`"
    )

    kafka_port: int = Field(
        default=9092, ge=1024, le=65534,
        description="the local broker's port (controller: port+1)",
    )
    kafka_cache_dir: Path = Field(
        default_factory=default_cache_dir, description="Kafka jars and broker state"
    )
    kafka_state_dir: Path | None = Field(
        default=None,
        description="the local broker's data and log; none means `<cache>/broker-<port>`",
    )
    kafka_heap: str = Field(default="768m", description="the local broker's Java heap")
    kafka_cluster_heap: str = Field(
        default="512m", pattern=r"^[1-9][0-9]*[mMgG]$",
        description="each node's Java heap in the local cluster (`kafka start --brokers 3`)",
    )
    kafka_start_timeout: float = Field(
        default=90.0, gt=0, description="seconds `kafka start` waits for the local broker"
    )
    worker_app_id: str = Field(
        default="advisering-worker",
        description="Faust app id = consumer group and prefix of internal topics",
    )
    worker_store: str = Field(
        default="memory://", pattern=r"^(memory|rocksdb|aerospike)://",
        description="table store (`rocksdb://` for large state)",
    )
    worker_partitions: int = Field(
        default=6, ge=1, description="partitions of the repartition and changelog topics"
    )
    worker_replication_factor: int | None = Field(
        default=None, ge=1,
        description="of the worker's internal topics; none means 1 on the local broker, else 3",
    )
    worker_web_host: str = Field(
        default="127.0.0.1", description="health, readiness and metrics (host)"
    )
    worker_web_port: int = Field(
        default=6066, ge=1, le=65535, description="health, readiness and metrics (port)"
    )
    worker_data_dir: Path = Field(
        default_factory=lambda: default_cache_dir() / "worker",
        description="Faust's data directory"
    )
    worker_commit_interval: float = Field(
        default=2.8, gt=0, description="seconds between offset commits"
    )
    worker_session_timeout: float = Field(
        default=30.0, ge=6, le=60, description="consumer session timeout (seconds; 6 to 60)"
    )
    worker_recovery_timeout: float = Field(
        default=300.0, ge=10, le=86400,
        description="seconds a worker may stay unready without a break (joining its group, "
        "rebalancing, recovering its table) before it exits 70 for its supervisor to "
        "restart it; raise it when a table's recovery legitimately takes longer (see "
        "[Delivery guarantees](operators.md#delivery-guarantees))",
    )
    worker_commit_hole_seconds: float = Field(
        default=15.0, ge=1, le=3600,
        description="seconds between checks for a partition whose commits stopped at a hole "
        "in Faust's offset books; one seen in two checks running is read again from its "
        "committed offset; with `ADVISERING_WORKER_DRAIN_PER_BATCH` (see "
        "[Delivery guarantees](operators.md#delivery-guarantees))",
    )
    # Delivery guarantees (docs/operators.md "Delivery guarantees").
    worker_producer_timeout: float = Field(
        default=120.0, ge=30, le=1200,
        description="seconds the worker's producer retries a batch (aiokafka's request "
        "timeout and batch expiry in one) before the worker exits 70 and redoes it; "
        "outlasts a leader election and a short outage of the whole cluster (see "
        "[Delivery guarantees](operators.md#delivery-guarantees))",
    )
    # Failures and shutdown (docs/operators.md "Failures, shutdown and health").
    worker_shutdown_grace: float = Field(
        default=20.0, gt=0, le=3600,
        description="seconds a SIGTERM/SIGINT stop may take before the process is ended "
        "(exit 143); keep below the pod's `terminationGracePeriodSeconds`",
    )
    worker_crash_stop_timeout: float = Field(
        default=5.0, gt=0, le=600,
        description="seconds a crashed worker's stop may take before `os._exit(70)`",
    )
    worker_crash_exit_delay: float = Field(
        default=0.0, ge=0, le=86400,
        description="seconds a crashed worker stays before exiting "
        "(for inspecting it; SIGTERM still ends it)",
    )
    rules_record_max_bytes: int = Field(
        default=262_144, ge=1024, le=16_777_216,
        description="larger records on `advisering.rules` are skipped as invalid",
    )
    kafka_log_interval: float = Field(
        default=10.0, ge=0, le=3600,
        description="seconds between two librdkafka/aiokafka log lines of one kind",
    )
    worker_batch_max: int = Field(
        default=1000, ge=1, le=100_000,
        description="most events an agent takes from its stream at once",
    )
    worker_drain_per_batch: bool = Field(
        default=True,
        description="guard deliveries against a rebalance per fetched batch, not per record "
                    "(Faust's own loop; about half of its CPU per record)",
    )
    worker_batch_seconds: float = Field(
        default=0.01, gt=0, le=5,
        description="how long an agent waits to fill a batch (latency per hop at low rates)",
    )
    # Bounded state per citizen (docs/operators.md "Bounded state per citizen"; the
    # same defaults as advisering/engine/limits.py, which a test checks).
    citizen_max_open_cases: int = Field(
        default=100, ge=1,
        description="open cases per citizen; an event opening one more is a dead letter "
        "(see [Bounded state per citizen](operators.md#bounded-state-per-citizen))",
    )
    citizen_max_seen_events: int = Field(
        default=2000, ge=1,
        description="remembered event ids per citizen (14 days); "
        "a new event past it is a dead letter",
    )
    citizen_max_tombstones: int = Field(
        default=200, ge=1,
        description="closed-case tombstones per citizen (30 days); "
        "a close past it is a dead letter",
    )
    citizen_max_sent_notifications: int = Field(
        default=500, ge=1,
        description="sent notification ids per citizen; the oldest are forgotten",
    )
    citizen_max_throttle_windows: int = Field(
        default=200, ge=1,
        description="throttle windows per citizen; those nearest their end are forgotten",
    )
    # Below the changelog topic's max.message.bytes (Kafka's default: 1 MiB).
    citizen_max_state_bytes: int = Field(
        default=524_288, ge=1024, le=1_000_000,
        description="largest changelog record of a citizen's state; a batch that would "
        "pass it is dead-lettered for that citizen",
    )

    serve_host: str = Field(default="127.0.0.1", description="`advisering serve` (host)")
    serve_port: int = Field(
        default=8080, ge=1, le=65535, description="`advisering serve` (port)"
    )
    # Several serve processes on one port (docs/operators.md "Several serve processes").
    serve_processes: int = Field(
        default=1, ge=1, le=32,
        description="`advisering serve` processes sharing the port with SO_REUSEPORT "
        "(1 to 32); above 1 only the HTTP ingest (no inbox), under one supervising parent",
    )
    # TLS terminated by serve itself (docs/operators.md "TLS and security headers").
    serve_tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate chain for `advisering serve` to answer https itself "
        "(TLS 1.2 or newer; with `ADVISERING_SERVE_TLS_KEY_FILE`); none means plain http "
        "behind an ingress that terminates TLS",
    )
    serve_tls_key_file: Path | None = Field(
        default=None,
        description="PEM private key of `ADVISERING_SERVE_TLS_CERT_FILE` (both or neither)",
    )
    serve_shutdown_grace: float = Field(
        default=20.0, gt=0, le=600,
        description="with several serve processes: seconds the parent gives them to stop "
        "after SIGTERM before it kills them",
    )
    sources_file: Path = Field(
        default=Path("sources.yaml"),
        description="source systems: hashed API keys and grants "
        "(serve and the worker; the worker needs it)",
    )
    # How long a rotated-out API key stays valid (`sources add --rotate`), and how
    # often serve and the worker look for a changed sources file.
    sources_rotation_grace: dt.timedelta = Field(
        default=dt.timedelta(hours=24), ge=dt.timedelta(0), le=dt.timedelta(days=30),
        description="how long `sources add --rotate` keeps the old key valid "
        "(ISO 8601, `PT0S` .. `P30D`)",
    )
    sources_reload_seconds: float = Field(
        default=1.0, ge=0, le=60,
        description="serve and the worker look for a changed sources file at most this "
        "often (0: every request / batch)",
    )
    ingest_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="larger bodies get 413"
    )
    ingest_max_events: int = Field(default=1000, ge=1, description="events per request")
    ingest_delivery_timeout: float = Field(
        default=30.0, gt=0, le=300,
        description="seconds Kafka has to confirm an event, retries included, before 503 "
        "(outlasts a leader election; a source's HTTP timeout should be longer)",
    )
    publish_delivery_timeout: float = Field(
        default=120.0, gt=0, le=3600,
        description="seconds the Python SDK and `advisering publish` wait for Kafka to "
        "confirm, retries included (outlasts a restart of the whole cluster)",
    )
    # What one event may hold (docs/sources.md "What an event may hold"): checked at
    # the ingest, by the publisher and by the worker alike.
    json_max_depth: int = Field(
        default=32, ge=2, le=200,
        description="deepest JSON nesting of an event (2 to 200); deeper is `too_deep` "
        "(ingest 422, worker dead letter)",
    )
    event_max_parties: int = Field(
        default=20, ge=1, le=1000,
        description="most parties in one event (1 to 1000); more is `too_large`",
    )

    token_secret: SecretStr | None = Field(
        default=None,
        description="signs inbox bearer tokens (at least 32 bytes); enables the inbox",
    )
    inbox_group: str = Field(
        default="advisering-inbox", description="the inbox's consumer group"
    )
    inbox_retention_days: float = Field(
        default=30.0, gt=0, description="read notifications are deleted after this"
    )
    case_urls: dict[str, str] = Field(
        default_factory=dict,
        description="JSON: source system -> case URL pattern with `{id}`, e.g. "
        '`{"dubu": "https://dubu.example/sag/{id}"}`; only `https://host/...` patterns '
        "(the id is percent-encoded into the link)",
    )
    channels_file: Path | None = Field(
        default=None,
        description="webhook and e-mail delivery channels (see "
        "[Delivery channels](caseworkers.md#delivery-channels))",
    )

    demo_dir: Path = Field(
        default_factory=lambda: default_cache_dir() / "demo",
        description="`advisering demo`'s folder: its inbox, sources, worker data and logs, "
        "and the data of the broker it starts; every run starts them afresh (see "
        "[The demo starts fresh](development.md#the-demo-starts-fresh))",
    )

    topic_replication_factor: int | None = Field(
        default=None, ge=1,
        description="development override for `topics apply`; none means as declared",
    )
    topic_partitions: int | None = Field(
        default=None, ge=1,
        description="development override for `topics apply`; none means as declared",
    )

    @field_validator("case_urls")
    @classmethod
    def _https_case_urls(cls, value: dict[str, str]) -> dict[str, str]:
        # The page makes each an <a href>: only https patterns (advisering.caselinks).
        for source, pattern in value.items():
            try:
                check_pattern(source, pattern)
            except ValueError as exc:
                raise ValueError(f"ADVISERING_CASE_URLS: {exc}") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.serve_tls_cert_file is None) != (self.serve_tls_key_file is None):
            raise ValueError("ADVISERING_SERVE_TLS_CERT_FILE and ADVISERING_SERVE_TLS_KEY_FILE "
                             "go together: set both (serve answers https) or neither")
        return self

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

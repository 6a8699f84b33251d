"""Every Kafka client's effective settings keep the promise: nothing acknowledged is lost.

Each producer writes with ``acks=all``; the librdkafka ones are idempotent;
every wait outlasts a leader election; consumers commit only what they
handled. docs/operators.md "Delivery guarantees" gives the reason of each value.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from advisering.audit.sink import audit_sink_consumer_config, audit_sink_producer_config
from advisering.edge.client import publisher_config
from advisering.http.server import ingest_producer_config
from advisering.inbox.consumer import inbox_consumer_config
from advisering.inbox.service import delivery_producer_config
from advisering.kafka.clients import consumer_config, producer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.reading import reader_config
from advisering.kafka.topics import citizen_topic_spec
from advisering.rulebook.deploy import deploy_producer_config
from advisering.rulebook.watch import watch_consumer_config
from advisering.settings import Settings
from advisering.worker import app as worker_app
from advisering.worker import faust_door
from advisering.worker.bundle import MAX_BYTES, pack_within, unpack

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = "127.0.0.1:1"
KAFKA = KafkaConnection.plaintext(BOOTSTRAP)
#: KRaft fences a broker that stopped heartbeating after broker.session.timeout.ms (9 s)
#: and moves its leaderships; a wait that must outlast an election is at least 3x that.
ELECTION_SECONDS = 9.0


def settings() -> Settings:
    return Settings(bootstrap_servers=BOOTSTRAP)


def producers() -> dict[str, dict[str, Any]]:
    """Every librdkafka producer advisering builds, by name, with the default settings."""
    s = settings()
    return {
        "ingest": ingest_producer_config(s),
        "publisher": publisher_config(s, s.publish_delivery_timeout),
        "delivery dead letters": delivery_producer_config(s),
        "rules deploy": deploy_producer_config(KAFKA, 60.0),
        "audit sink dead letters": audit_sink_producer_config(KAFKA),
    }


def consumers() -> dict[str, dict[str, Any]]:
    """Every librdkafka consumer advisering builds, by name."""
    return {
        "inbox": inbox_consumer_config(KAFKA, "advisering-inbox"),
        "rules watcher": watch_consumer_config(KAFKA),
        "reader": reader_config(KAFKA, "backtest"),
        "plain": consumer_config(KAFKA, group="g", client_id="c"),
        "audit sink": audit_sink_consumer_config(KAFKA, "advisering-audit"),
    }


@pytest.mark.parametrize("name", sorted(producers()))
def test_every_producer_is_idempotent_with_acks_all_and_outlasts_an_election(name: str) -> None:
    """Each producer: idempotent, acks=all, retries within a delivery timeout of 3+ elections."""
    config = producers()[name]
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["delivery.timeout.ms"] >= 3 * ELECTION_SECONDS * 1000
    assert config["request.timeout.ms"] == 30_000
    assert config["retry.backoff.ms"] == 100
    assert config["retry.backoff.max.ms"] == 1_000
    assert "retries" not in config  # idempotence: librdkafka retries until the delivery timeout
    assert config["client.id"].startswith("advisering-")
    Producer(config)  # librdkafka accepts it as it is


def test_delivery_timeouts_come_from_the_settings() -> None:
    """The ingest gives up (503) after ADVISERING_INGEST_DELIVERY_TIMEOUT, the SDK after its own."""
    s = Settings(bootstrap_servers=BOOTSTRAP, ingest_delivery_timeout=45,
                 publish_delivery_timeout=300)
    assert ingest_producer_config(s)["delivery.timeout.ms"] == 45_000
    assert publisher_config(s, s.publish_delivery_timeout)["delivery.timeout.ms"] == 300_000
    assert settings().ingest_delivery_timeout == 30
    assert settings().publish_delivery_timeout == 120


@pytest.mark.parametrize("weakened", [{"acks": "1"}, {"acks": 1}, {"enable.idempotence": False}])
def test_a_producer_cannot_be_weakened(weakened: dict[str, Any]) -> None:
    """Extra properties may add to a producer's settings, never drop acks=all or idempotence."""
    with pytest.raises(ValueError, match="must keep"):
        producer_config(KAFKA, client_id="x", delivery_timeout=30, props=weakened)


@pytest.mark.parametrize("name", sorted(consumers()))
def test_every_consumer_commits_itself_reads_committed_and_survives_a_slow_rebalance(
    name: str,
) -> None:
    """Each consumer: no auto-commit, read_committed, 45 s session, 3 s heartbeat, 5 min poll."""
    config = consumers()[name]
    assert config["enable.auto.commit"] is False
    assert config["isolation.level"] == "read_committed"
    assert config["session.timeout.ms"] == 45_000
    assert config["heartbeat.interval.ms"] * 3 <= config["session.timeout.ms"]
    assert config["max.poll.interval.ms"] == 300_000
    assert config["auto.offset.reset"] == "earliest"
    Consumer(config).close()


def _client_constructions() -> list[tuple[str, str, str]]:
    """(module, client class, how its configuration is built) of every Kafka client made."""
    found = []
    for path in sorted((ROOT / "advisering").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in {"Producer", "Consumer", "AsyncProducer"} and node.args):
                arg = node.args[0]
                built = (arg.func.id if isinstance(arg, ast.Call)
                         and isinstance(arg.func, ast.Name) else ast.unparse(arg))
                found.append((str(path.relative_to(ROOT)), node.func.id, built))
    return found


def test_every_kafka_client_is_built_from_a_checked_configuration() -> None:
    """A new producer or consumer fails here until its configuration is one tested above."""
    checked = {"ingest_producer_config", "publisher_config", "delivery_producer_config",
               "deploy_producer_config", "inbox_consumer_config", "watch_consumer_config",
               "reader_config", "consumer_config", "audit_sink_producer_config",
               "audit_sink_consumer_config"}
    unchecked = [c for c in _client_constructions()
                 if c[2] not in checked and c[0] != "advisering/kafka/producer.py"]
    assert unchecked == []
    assert len(_client_constructions()) >= 10


def test_the_worker_writes_with_acks_all_and_retries_past_an_election() -> None:
    """Faust: acks=all, a producer timeout of 2 minutes, Faust's rebalance limits, all explicit."""
    app = worker_app.faust_app(settings(), 1)
    conf = app.conf
    assert conf.producer_acks == -1
    assert conf.producer_request_timeout == 120.0
    assert conf.producer_max_request_size == 1_000_000
    assert conf.broker_session_timeout == 30.0
    assert conf.broker_heartbeat_interval == 3.0
    assert conf.broker_rebalance_timeout == 60.0
    assert conf.broker_request_timeout == 90.0
    assert conf.broker_max_poll_interval == 300.0
    assert conf.stream_wait_empty is True
    assert conf.consumer_auto_offset_reset == "earliest"
    # Faust refuses a session longer than the request timeout; aiokafka sends JoinGroup
    # with the request timeout, and the coordinator holds it up to the rebalance timeout.
    assert conf.broker_session_timeout < conf.broker_rebalance_timeout < conf.broker_request_timeout
    assert conf.broker_max_poll_interval > conf.producer_request_timeout > 3 * ELECTION_SECONDS


def test_the_worker_producer_is_what_aiokafka_gets() -> None:
    """aiokafka's producer: acks -1, request timeout (= batch expiry) 120 s, not idempotent.

    Not idempotent on purpose: aiokafka 0.14 neither retries nor resets its
    sequence numbers after OutOfOrderSequenceNumber (docs/operators.md).
    """
    app = worker_app.faust_app(settings(), 1)
    kwargs = faust_door.aiokafka_producer_settings(app)
    assert kwargs["acks"] == -1
    assert kwargs["request_timeout_ms"] == 120_000
    assert kwargs["max_request_size"] == 1_000_000
    assert not kwargs.get("enable_idempotence", False)


def test_the_environment_cannot_change_the_worker_kafka_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust's own variables (PRODUCER_ACKS=1, ...) are ignored: only ADVISERING_* counts."""
    for name, value in {"PRODUCER_ACKS": "1", "BROKER_SESSION_TIMEOUT": "99",
                        "PRODUCER_REQUEST_TIMEOUT": "5", "STREAM_WAIT_EMPTY": "false"}.items():
        monkeypatch.setenv(name, value)
    conf = worker_app.faust_app(settings(), 1).conf
    assert conf.producer_acks == -1
    assert conf.broker_session_timeout == 30.0
    assert conf.producer_request_timeout == 120.0
    assert conf.stream_wait_empty is True


def test_worker_timeouts_follow_the_settings() -> None:
    """The worker's producer and session timeouts reach Faust; the poll limit follows."""
    conf = worker_app.faust_app(Settings(bootstrap_servers=BOOTSTRAP, worker_producer_timeout=600,
                                         worker_session_timeout=12), 1).conf
    assert conf.producer_request_timeout == 600.0
    assert conf.broker_max_poll_interval == 1200.0
    assert conf.broker_session_timeout == 12.0
    assert conf.broker_heartbeat_interval == 3.0


def test_the_worker_records_fit_the_producer_request() -> None:
    """Bundles, a citizen's state (default) and dead letters stay below the largest request."""
    assert MAX_BYTES * 2 < worker_app.PRODUCER_MAX_REQUEST_SIZE
    assert settings().citizen_max_state_bytes < worker_app.PRODUCER_MAX_REQUEST_SIZE


def test_bundles_are_split_below_their_limit_and_read_back_in_order() -> None:
    """pack_within cuts a partition's copies into records of at most the limit, order kept."""
    citizen = b"ps1-" + b"a" * 52
    pairs = [(citizen, b'{"id":"%d","pad":"%s"}' % (n, b"x" * 900)) for n in range(1000)]
    records = pack_within(pairs)
    assert len(records) > 1
    assert all(len(record) <= MAX_BYTES for record in records)
    assert [pair for record in records for pair in unpack(record)] == pairs
    huge = [(citizen, b'{"id":"big","pad":"%s"}' % (b"x" * (MAX_BYTES + 10))), *pairs[:2]]
    alone, rest = pack_within(huge)
    assert unpack(alone) == huge[:1]
    assert unpack(rest) == huge[1:]
    assert pack_within([]) == []


@pytest.mark.parametrize(("replicas", "min_isr"), [(3, "2"), (1, "1")])
def test_the_worker_internal_topics_confirm_on_two_replicas(replicas: int, min_isr: str) -> None:
    """The changelog and repartition topics want 2 in-sync replicas (1 on a one-node broker)."""
    s = settings()
    citizens = worker_app.citizens_table(worker_app.faust_app(s, replicas), s)
    assert citizens.changelog_topic.config == {"min.insync.replicas": min_isr}
    spec = citizen_topic_spec(ROOT / "topics", s).effective(None, replicas)
    assert spec.config["min.insync.replicas"] == min_isr

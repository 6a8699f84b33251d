"""`kafka start --secure` and ACLs as code on a secure broker of the test's own.

The broker listens in SASL_SSL only, with one SCRAM user per component and
the StandardAuthorizer denying whatever ``topics/acls.yaml`` does not allow.
Each test asserts a refusal with the error Kafka gives for it.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from advisering.dev import kafka_secure
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import CASE_EVENTS, NOTIFICATIONS, RULES
from tests.integration.bus import run_cli, scratch_broker_env

SECURE_PORT = int(os.environ.get("ADVISERING_TEST_SECURE_PORT", "19692"))
BOOTSTRAP = f"127.0.0.1:{SECURE_PORT}"
QUIET = {"log_level": 0}  # librdkafka repeats every refused connection on stderr
# librdkafka's local error codes are underscored members of KafkaError.
AUTHENTICATION = KafkaError._AUTHENTICATION  # noqa: SLF001
ALL_BROKERS_DOWN = KafkaError._ALL_BROKERS_DOWN  # noqa: SLF001
PARTITION_EOF = KafkaError._PARTITION_EOF  # noqa: SLF001


@dataclass(frozen=True)
class SecureBroker:
    """The running secure broker: its environment, files and client env files."""

    env: dict[str, str]
    files: kafka_secure.SecureFiles

    def component_env(self, component: str, **extra: str) -> dict[str, str]:
        """The broker's environment plus ``component``'s env file, as `set -a; . file` gives."""
        values = kafka_secure.read_env_file(self.files.env_file(component))
        return {**self.env, **values, **extra}

    def connection(self, component: str) -> KafkaConnection:
        """The SASL_SSL connection of ``component``'s SCRAM user."""
        return kafka_secure.connection_for(self.files, BOOTSTRAP, component)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A secure broker on its own port and state folder, topics and ACLs applied; stopped after."""
    state = tmp_path_factory.mktemp("secure-broker")
    env = scratch_broker_env(SECURE_PORT, state)
    started = run_cli(env, "kafka", "start", "--secure", "--fresh", timeout=180)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        broker = SecureBroker(env, kafka_secure.secure_files(state))
        applied = run_cli(broker.component_env("admin", ADVISERING_TOPIC_REPLICATION_FACTOR="1"),
                          "topics", "apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield broker
    finally:
        run_cli(env, "kafka", "stop")


def test_start_prints_where_the_credentials_are_and_no_password(
    secure_broker: SecureBroker,
) -> None:
    """A second start and status name the env files; neither prints a password; files are 0600."""
    again = run_cli(secure_broker.env, "kafka", "start", "--secure")
    status = run_cli(secure_broker.env, "kafka", "status")
    assert again.returncode == 0 and status.returncode == 0, again.stderr + status.stderr
    assert "SASL_SSL" in status.stdout
    assert str(secure_broker.files.clients) in status.stdout
    for component in kafka_secure.COMPONENTS:
        path = secure_broker.files.env_file(component)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        password = kafka_secure.read_env_file(path)["ADVISERING_KAFKA_SASL_PASSWORD"]
        assert password not in again.stdout + again.stderr + status.stdout + status.stderr


def test_second_apply_has_nothing_to_do(secure_broker: SecureBroker) -> None:
    """topics apply as admin is idempotent for the ACLs as for the topics."""
    env = secure_broker.component_env("admin", ADVISERING_TOPIC_REPLICATION_FACTOR="1")
    again = run_cli(env, "topics", "apply")
    assert again.returncode == 0, again.stderr
    assert "unchanged  " in again.stdout and "ACL binding" in again.stdout
    assert "Nothing to do" in again.stdout


def test_source_writes_case_events_but_cannot_read_notifications(
    secure_broker: SecureBroker,
) -> None:
    """The source's credentials publish a case event; reading notifications is not authorized."""
    source = secure_broker.connection("source")
    outcomes: list[KafkaError | None] = []
    producer = Producer({**source.confluent(), **QUIET})
    producer.produce(CASE_EVENTS, b"{}", key=b"probe",
                     on_delivery=lambda error, _msg: outcomes.append(error))
    producer.flush(30)
    assert outcomes == [None]

    admin = AdminClient({**source.confluent(), **QUIET})
    topic = admin.list_topics(topic=NOTIFICATIONS, timeout=15).topics[NOTIFICATIONS]
    assert topic.error is not None
    assert topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    refused = read_errors(source, NOTIFICATIONS, group="advisering-inbox")
    assert refused & {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}


def test_worker_cannot_write_rules(secure_broker: SecureBroker) -> None:
    """The worker's credentials are refused on advisering.rules (TOPIC_AUTHORIZATION_FAILED)."""
    outcomes: list[KafkaError | None] = []
    producer = Producer({**secure_broker.connection("worker").confluent(), **QUIET,
                         "message.timeout.ms": 20000})
    producer.produce(RULES, b"{}", key=b"forged-rule",
                     on_delivery=lambda error, _msg: outcomes.append(error))
    producer.flush(30)
    assert len(outcomes) == 1 and outcomes[0] is not None
    assert outcomes[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_operator_writes_rules_and_serve_reads_notifications(
    secure_broker: SecureBroker,
) -> None:
    """What acls.yaml grants works: the operator writes rules, serve reads in its group."""
    outcomes: list[KafkaError | None] = []
    producer = Producer({**secure_broker.connection("operator").confluent(), **QUIET})
    producer.produce(RULES, None, key=b"no-such-rule",
                     on_delivery=lambda error, _msg: outcomes.append(error))
    producer.flush(30)
    assert outcomes == [None]
    assert read_errors(secure_broker.connection("serve"), NOTIFICATIONS,
                       group="advisering-inbox") == set()


def test_wrong_password_is_refused(secure_broker: SecureBroker) -> None:
    """A known user with a wrong password fails SCRAM authentication (_AUTHENTICATION)."""
    wrong = KafkaConnection(bootstrap=BOOTSTRAP, protocol="SASL_SSL", sasl_username="worker",
                            sasl_password=SecretStr("not-the-password"),
                            ssl_ca_file=secure_broker.files.ca)
    errors = connection_errors(wrong)
    assert AUTHENTICATION in {error.code() for error in errors}
    assert any("invalid credentials" in error.str() for error in errors)


@pytest.mark.usefixtures("secure_broker")
def test_plaintext_connection_fails() -> None:
    """A client without TLS gets no metadata: the broker closes the connection."""
    errors = connection_errors(KafkaConnection.plaintext(BOOTSTRAP))
    assert ALL_BROKERS_DOWN in {error.code() for error in errors}
    admin = AdminClient({**KafkaConnection.plaintext(BOOTSTRAP).confluent(), **QUIET})
    with pytest.raises(Exception, match=r"_TRANSPORT|Failed to get metadata"):
        admin.list_topics(timeout=5)


def test_secure_and_plain_state_folders_are_not_mixed(secure_broker: SecureBroker) -> None:
    """Starting the secure broker's folder without --secure is refused, naming --fresh."""
    result = run_cli(secure_broker.env, "kafka", "start")
    assert result.returncode == 2
    assert "--fresh" in result.stderr


def read_errors(kafka: KafkaConnection, topic: str, *, group: str,
                seconds: float = 8.0) -> set[int]:
    """The error codes a consumer in ``group`` meets reading ``topic`` for a few seconds."""
    codes: set[int] = set()
    consumer = Consumer({**kafka.confluent(), **QUIET, "group.id": group,
                         "enable.auto.commit": False,
                         "error_cb": lambda error: codes.add(error.code())})
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is not None:
                codes.add(message.error().code())
    finally:
        consumer.close()
    codes.discard(PARTITION_EOF)
    return codes


def connection_errors(kafka: KafkaConnection, seconds: float = 10.0) -> list[KafkaError]:
    """The errors librdkafka reports while a producer of ``kafka`` tries to connect."""
    errors: list[KafkaError] = []
    producer = Producer({**kafka.confluent(), **QUIET, "error_cb": errors.append})
    deadline = time.monotonic() + seconds
    while not errors and time.monotonic() < deadline:
        producer.poll(0.5)
    return errors

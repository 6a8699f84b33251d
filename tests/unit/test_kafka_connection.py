"""The Kafka security settings: one validated value, rendered for librdkafka and for Faust.

No broker here: the rendered configurations are checked key by key, and
librdkafka and aiokafka are made to accept them (they load the CA,
certificate and key when a client is built).
"""

from __future__ import annotations

import io
import json
import ssl
from pathlib import Path
from typing import Any

import aiokafka
import faust
import pytest
import structlog
from confluent_kafka import Producer
from pydantic import SecretStr

from advisering.kafka.clients import client_config, producer_config
from advisering.kafka.connection import KafkaConnection, KafkaSecurityError
from advisering.log import configure_logging
from advisering.settings import Settings
from advisering.worker import app as worker_app
from advisering.worker import faust_door
from tests.unit.pki import Pki, make_pki

BOOTSTRAP = "127.0.0.1:1"
PASSWORD = "correct-horse-battery-staple-9f2c"  # a test's fake password


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def sasl(pki: Pki, **changes: Any) -> KafkaConnection:
    fields: dict[str, Any] = {
        "bootstrap": BOOTSTRAP, "protocol": "SASL_SSL", "sasl_username": "advisering-worker",
        "sasl_password": SecretStr(PASSWORD), "ssl_ca_file": pki.ca}
    fields.update(changes)
    return KafkaConnection(**fields)


def secured_settings(pki: Pki, **changes: Any) -> Settings:
    fields: dict[str, Any] = {
        "bootstrap_servers": BOOTSTRAP, "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "advisering-worker", "kafka_sasl_password": PASSWORD,
        "kafka_ssl_ca_file": pki.ca}
    fields.update(changes)
    return Settings(**fields)


# -- librdkafka ------------------------------------------------------------------------


def test_plaintext_renders_only_the_bootstrap_and_the_protocol() -> None:
    """PLAINTEXT (the default): bootstrap.servers and security.protocol, nothing else."""
    kafka = KafkaConnection.from_settings(Settings(bootstrap_servers=BOOTSTRAP))
    assert kafka.confluent() == {"bootstrap.servers": BOOTSTRAP,
                                 "security.protocol": "PLAINTEXT"}
    assert kafka.ssl_context() is None
    assert kafka.faust_credentials() is None


def test_ssl_renders_tls_with_the_ca_and_a_client_certificate(pki: Pki) -> None:
    """SSL: the CA, the client certificate and key, hostname checks; no SASL keys."""
    kafka = KafkaConnection(bootstrap=BOOTSTRAP, protocol="SSL", ssl_ca_file=pki.ca,
                            ssl_cert_file=pki.cert, ssl_key_file=pki.key)
    assert kafka.confluent() == {
        "bootstrap.servers": BOOTSTRAP, "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(pki.ca), "ssl.certificate.location": str(pki.cert),
        "ssl.key.location": str(pki.key)}
    Producer(client_config(kafka))  # librdkafka loads the CA, certificate and key


def test_ssl_without_a_ca_file_uses_the_system_cas() -> None:
    """SSL with no CA file sets no ssl.ca.location: librdkafka and Python use the system store."""
    kafka = KafkaConnection(bootstrap=BOOTSTRAP, protocol="SSL")
    assert "ssl.ca.location" not in kafka.confluent()
    context = kafka.ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    Producer(client_config(kafka))


def test_sasl_ssl_renders_scram_sha_512_with_the_credentials(pki: Pki) -> None:
    """SASL_SSL: SCRAM-SHA-512, username and password, the CA; librdkafka accepts it."""
    kafka = sasl(pki)
    assert kafka.confluent() == {
        "bootstrap.servers": BOOTSTRAP, "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "advisering-worker",
        "sasl.password": PASSWORD, "ssl.ca.location": str(pki.ca)}
    Producer(producer_config(kafka, client_id="advisering-test", delivery_timeout=30))


def test_sasl_ssl_may_add_a_client_certificate(pki: Pki) -> None:
    """SASL_SSL with a client certificate renders both the login and the certificate."""
    config = sasl(pki, ssl_cert_file=pki.cert, ssl_key_file=pki.key).confluent()
    assert config["ssl.certificate.location"] == str(pki.cert)
    assert config["sasl.username"] == "advisering-worker"


@pytest.mark.parametrize("key", ["bootstrap.servers", "security.protocol", "sasl.password",
                                 "ssl.ca.location", "sasl.mechanisms"])
def test_a_clients_own_properties_cannot_override_the_connection(pki: Pki, key: str) -> None:
    """A client's extra properties may not replace what the connection sets (ValueError)."""
    with pytest.raises(ValueError, match="come from the KafkaConnection"):
        client_config(sasl(pki), {key: "PLAINTEXT"})
    with pytest.raises(ValueError, match="come from the KafkaConnection"):
        producer_config(sasl(pki), client_id="x", delivery_timeout=30, props={key: "x"})


# -- Faust and aiokafka ----------------------------------------------------------------


def test_faust_gets_ssl_credentials_with_the_context(pki: Pki) -> None:
    """SSL: Faust's broker_credentials carry a context with the client certificate."""
    kafka = KafkaConnection(bootstrap="a:9093,b:9093", protocol="SSL", ssl_ca_file=pki.ca,
                            ssl_cert_file=pki.cert, ssl_key_file=pki.key)
    credentials = kafka.faust_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    assert credentials.context.check_hostname
    assert kafka.faust_broker_urls() == ["kafka://a:9093", "kafka://b:9093"]


async def test_scram_sha_512_reaches_fausts_aiokafka_consumer_and_producer(pki: Pki) -> None:
    """The worker's Faust app hands SASL_SSL, SCRAM-SHA-512 and the login to aiokafka as set."""
    app = worker_app.faust_app(secured_settings(pki), 1)
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)
    consumer_auth = faust_door.aiokafka_auth(app)
    assert consumer_auth["security_protocol"] == "SASL_SSL"
    assert consumer_auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert consumer_auth["sasl_plain_username"] == "advisering-worker"
    assert consumer_auth["sasl_plain_password"] == PASSWORD
    assert isinstance(consumer_auth["ssl_context"], ssl.SSLContext)
    producer = faust_door.aiokafka_producer_settings(app)
    assert {k: producer[k] for k in consumer_auth} == consumer_auth
    assert producer["bootstrap_servers"] == [BOOTSTRAP]
    # aiokafka refuses a protocol without a context or a mechanism it lacks; nothing connects.
    aiokafka.AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, **consumer_auth)
    aiokafka.AIOKafkaProducer(**producer)


async def test_a_plaintext_worker_stays_plaintext() -> None:
    """Without security settings the worker's aiokafka clients use PLAINTEXT and no context."""
    app = worker_app.faust_app(Settings(bootstrap_servers=BOOTSTRAP), 1)
    assert faust_door.aiokafka_auth(app) == {"security_protocol": "PLAINTEXT"}
    assert faust_door.aiokafka_producer_settings(app)["security_protocol"] == "PLAINTEXT"


# -- Validation -------------------------------------------------------------------------


def bad_connections(pki: Pki, tmp_path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Each wrong combination: its fields and the variable its error must name."""
    missing = tmp_path / "missing.pem"
    return {
        "plaintext with a password": (
            {"sasl_password": SecretStr(PASSWORD)}, "ADVISERING_KAFKA_SASL_PASSWORD"),
        "plaintext with a username": (
            {"sasl_username": "u"}, "ADVISERING_KAFKA_SASL_USERNAME"),
        "plaintext with a CA": ({"ssl_ca_file": pki.ca}, "ADVISERING_KAFKA_SSL_CA_FILE"),
        "ssl with a password": (
            {"protocol": "SSL", "sasl_username": "u", "sasl_password": SecretStr(PASSWORD)},
            "use SASL_SSL"),
        "sasl without a password": (
            {"protocol": "SASL_SSL", "sasl_username": "u"}, "ADVISERING_KAFKA_SASL_PASSWORD"),
        "sasl with an empty password": (
            {"protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": SecretStr("")},
            "ADVISERING_KAFKA_SASL_PASSWORD"),
        "sasl without a username": (
            {"protocol": "SASL_SSL", "sasl_password": SecretStr(PASSWORD)},
            "ADVISERING_KAFKA_SASL_USERNAME"),
        "certificate without key": (
            {"protocol": "SSL", "ssl_cert_file": pki.cert}, "ADVISERING_KAFKA_SSL_KEY_FILE"),
        "key without certificate": (
            {"protocol": "SSL", "ssl_key_file": pki.key}, "ADVISERING_KAFKA_SSL_CERT_FILE"),
        "missing CA file": (
            {"protocol": "SSL", "ssl_ca_file": missing}, "ADVISERING_KAFKA_SSL_CA_FILE"),
        "CA is a folder": (
            {"protocol": "SSL", "ssl_ca_file": tmp_path}, "ADVISERING_KAFKA_SSL_CA_FILE"),
        "CA is not PEM": (
            {"protocol": "SSL", "ssl_ca_file": pki.garbage}, "ADVISERING_KAFKA_SSL_CA_FILE"),
        "key of another certificate": (
            {"protocol": "SSL", "ssl_cert_file": pki.cert, "ssl_key_file": pki.other_key},
            "ADVISERING_KAFKA_SSL_KEY_FILE"),
        "encrypted key": (
            {"protocol": "SSL", "ssl_cert_file": pki.cert, "ssl_key_file": pki.encrypted_key},
            "encrypted"),
        "unknown protocol": ({"protocol": "SASL_PLAINTEXT"}, "ADVISERING_KAFKA_SECURITY_PROTOCOL"),
        "no bootstrap": ({"bootstrap": " , "}, "ADVISERING_BOOTSTRAP_SERVERS"),
    }


CASES = ["plaintext with a password", "plaintext with a username", "plaintext with a CA",
         "ssl with a password", "sasl without a password", "sasl with an empty password",
         "sasl without a username", "certificate without key", "key without certificate",
         "missing CA file", "CA is a folder", "CA is not PEM", "key of another certificate",
         "encrypted key", "unknown protocol", "no bootstrap"]


@pytest.mark.parametrize("case", CASES)
def test_a_wrong_combination_is_refused_naming_the_variable(
    pki: Pki, tmp_path: Path, case: str,
) -> None:
    """Each wrong setting stops the start with an error naming its variable, never the password."""
    fields, named = bad_connections(pki, tmp_path)[case]
    with pytest.raises(KafkaSecurityError) as caught:
        KafkaConnection(**{"bootstrap": BOOTSTRAP, **fields})
    assert named in str(caught.value)
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)
    assert caught.value.__cause__ is None  # no chained library error quoting anything


def test_an_unreadable_file_is_refused(pki: Pki, tmp_path: Path) -> None:
    """A CA file this process cannot open is named with the reason."""
    locked = tmp_path / "locked.pem"
    locked.write_bytes(pki.ca.read_bytes())
    locked.chmod(0)
    try:
        readable = locked.open("rb")  # root reads any file: then there is nothing to refuse
    except PermissionError:
        with pytest.raises(KafkaSecurityError, match="ADVISERING_KAFKA_SSL_CA_FILE: cannot read"):
            KafkaConnection(bootstrap=BOOTSTRAP, protocol="SSL", ssl_ca_file=locked)
    else:
        readable.close()
        KafkaConnection(bootstrap=BOOTSTRAP, protocol="SSL", ssl_ca_file=locked)


def test_settings_read_the_variables_case_blind_and_blank_as_unset(
    pki: Pki, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ADVISERING_KAFKA_* from the environment: `sasl_ssl` works, an empty variable is unset."""
    monkeypatch.setenv("ADVISERING_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("ADVISERING_KAFKA_SASL_USERNAME", "advisering-worker")
    monkeypatch.setenv("ADVISERING_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("ADVISERING_KAFKA_SSL_CA_FILE", str(pki.ca))
    monkeypatch.setenv("ADVISERING_KAFKA_SSL_CERT_FILE", "")
    monkeypatch.setenv("ADVISERING_KAFKA_SSL_KEY_FILE", " ")
    settings = Settings(bootstrap_servers=BOOTSTRAP)
    assert settings.kafka_ssl_cert_file is None and settings.kafka_ssl_key_file is None
    assert KafkaConnection.from_settings(settings) == sasl(pki)


# -- The password stays secret ----------------------------------------------------------


def test_the_password_is_in_no_repr(pki: Pki) -> None:
    """repr and str of the settings, the connection and Faust's credentials hide the password."""
    settings = secured_settings(pki)
    kafka = KafkaConnection.from_settings(settings)
    for shown in (repr(settings), str(settings), repr(kafka), str(kafka),
                  repr(kafka.faust_credentials()), repr(kafka.describe()),
                  settings.model_dump_json()):
        assert PASSWORD not in shown
    assert "advisering-worker" in repr(kafka)


def test_the_password_is_in_no_log_line(
    pki: Pki, capsys: pytest.CaptureFixture[str],
) -> None:
    """Logging the settings, the connection or the worker's start line never writes the password."""
    settings = secured_settings(pki, log_format="json")
    configure_logging(settings)
    try:
        kafka = KafkaConnection.from_settings(settings)
        log = structlog.get_logger("test")
        log.info("worker_starting", app_id="a", **kafka.describe())
        log.info("connection", kafka=kafka, settings=settings,
                 credentials=kafka.faust_credentials())
        try:
            KafkaConnection(bootstrap=BOOTSTRAP, sasl_password=SecretStr(PASSWORD))
        except KafkaSecurityError:
            log.exception("kafka_settings_refused")
    finally:
        structlog.reset_defaults()
    written = capsys.readouterr().err
    lines = [json.loads(line) for line in io.StringIO(written) if line.strip()]
    assert [line["event"] for line in lines] == ["worker_starting", "connection",
                                                 "kafka_settings_refused"]
    assert lines[0]["security_protocol"] == "SASL_SSL"
    assert lines[0]["sasl_username"] == "advisering-worker"
    assert PASSWORD not in written

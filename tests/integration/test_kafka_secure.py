"""`kafka start --secure` and ACLs as code on a secure broker of the test's own.

The broker has two client listeners, SASL_SSL (one SCRAM user per
component) and mutual TLS (protocol SSL, one client certificate per
component, CN = the user), and the StandardAuthorizer denies whatever
``topics/acls.yaml`` does not allow; the certificate's CN maps to the same
principal as the SCRAM user, so the ACL tests run over both protocols.
Each test asserts a refusal with the error Kafka gives for it.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from advisering.dev import kafka_certs, kafka_secure
from advisering.dev.demo import write_demo_sources
from advisering.dev.scenario import DEMO_EXPECTED, demo_scenario
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import (
    AUDIT,
    CASE_EVENTS,
    NOTIFICATIONS,
    RULES,
    citizen_topic_name,
    load_vocabulary,
)
from advisering.testing import read_topic, wait_until_idle
from tests.integration.bus import (
    ROOT,
    WorkerProcess,
    bus_env,
    free_port,
    run_cli,
    scratch_broker_env,
    terminate,
    write_jsonl,
)
from tests.integration.kafka_probes import (
    AUTHENTICATION,
    QUIET,
    connection_errors,
    read_errors,
    refused_everywhere,
    tls_api_versions,
)

SECURE_PORT = int(os.environ.get("ADVISERING_TEST_SECURE_PORT", "19692"))
BOOTSTRAP = f"127.0.0.1:{SECURE_PORT}"
# The mutual-TLS listener: port + 2 (the controller has port + 1); 19694 is clear of CI's ports.
MTLS_BOOTSTRAP = f"127.0.0.1:{SECURE_PORT + kafka_secure.MTLS_PORT_OFFSET}"
#: Both ways a component authenticates: SCRAM over TLS, and its client certificate.
BOTH_PROTOCOLS = pytest.mark.parametrize("protocol", ["SASL_SSL", "SSL"])
PSEUDONYM_KEY = secrets.token_hex(32)  # one key for the ingest and the worker


@dataclass(frozen=True)
class SecureBroker:
    """The running secure broker: its environment, files and client env files."""

    env: dict[str, str]
    files: kafka_secure.SecureFiles

    def env_file(self, component: str, protocol: str = "SASL_SSL") -> Path:
        """``component``'s env file for ``protocol`` (SASL_SSL, or SSL: mutual TLS)."""
        if protocol == "SSL":
            return self.files.mtls_env_file(component)
        return self.files.env_file(component)

    def component_env(self, component: str, **extra: str) -> dict[str, str]:
        """The broker's environment plus ``component``'s env file, as `set -a; . file` gives."""
        values = kafka_secure.read_env_file(self.files.env_file(component))
        return {**self.env, **values, **extra}

    def connection(self, component: str, protocol: str = "SASL_SSL") -> KafkaConnection:
        """``component``'s connection: its SCRAM user, or (SSL) its client certificate."""
        if protocol == "SSL":
            return kafka_secure.mtls_connection_for(self.files, MTLS_BOOTSTRAP, component)
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
    """A second start and status name both listeners and the env files, no password; 0600 files."""
    again = run_cli(secure_broker.env, "kafka", "start", "--secure")
    status = run_cli(secure_broker.env, "kafka", "status")
    assert again.returncode == 0 and status.returncode == 0, again.stderr + status.stderr
    assert "SASL_SSL" in status.stdout
    assert f"SSL (mutual TLS, client certificate CN = user) at {MTLS_BOOTSTRAP}" in status.stdout
    assert str(secure_broker.files.clients) in status.stdout
    assert stat.S_IMODE(secure_broker.files.clients.stat().st_mode) == 0o700
    files = secure_broker.files
    for component in kafka_secure.COMPONENTS:
        for path in (files.env_file(component), files.mtls_env_file(component),
                     files.client_certificate(component), files.client_key(component)):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        password = kafka_secure.read_env_file(files.env_file(component))[
            "ADVISERING_KAFKA_SASL_PASSWORD"]
        assert password not in again.stdout + again.stderr + status.stdout + status.stderr


def test_second_apply_has_nothing_to_do(secure_broker: SecureBroker) -> None:
    """topics apply as admin is idempotent for the ACLs as for the topics."""
    env = secure_broker.component_env("admin", ADVISERING_TOPIC_REPLICATION_FACTOR="1")
    again = run_cli(env, "topics", "apply")
    assert again.returncode == 0, again.stderr
    assert "unchanged  " in again.stdout and "ACL binding" in again.stdout
    assert "Nothing to do" in again.stdout


@BOTH_PROTOCOLS
def test_source_writes_case_events_but_cannot_read_notifications(
    secure_broker: SecureBroker, protocol: str,
) -> None:
    """The source's password or certificate publishes a case event; notifications are denied."""
    source = secure_broker.connection("source", protocol)
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


@BOTH_PROTOCOLS
def test_worker_cannot_write_rules(secure_broker: SecureBroker, protocol: str) -> None:
    """The worker's password or certificate is refused on advisering.rules (TOPIC_AUTHORIZATION)."""
    outcomes: list[KafkaError | None] = []
    producer = Producer({**secure_broker.connection("worker", protocol).confluent(), **QUIET,
                         "message.timeout.ms": 20000})
    producer.produce(RULES, b"{}", key=b"forged-rule",
                     on_delivery=lambda error, _msg: outcomes.append(error))
    producer.flush(30)
    assert len(outcomes) == 1 and outcomes[0] is not None
    assert outcomes[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


@BOTH_PROTOCOLS
def test_operator_writes_rules_and_serve_reads_notifications(
    secure_broker: SecureBroker, protocol: str,
) -> None:
    """What acls.yaml grants works: the operator writes rules, serve reads in its group."""
    outcomes: list[KafkaError | None] = []
    producer = Producer({**secure_broker.connection("operator", protocol).confluent(), **QUIET})
    producer.produce(RULES, None, key=b"no-such-rule",
                     on_delivery=lambda error, _msg: outcomes.append(error))
    producer.flush(30)
    assert outcomes == [None]
    assert read_errors(secure_broker.connection("serve", protocol), NOTIFICATIONS,
                       group="advisering-inbox") == set()


def test_audit_sink_reads_the_audit_but_not_the_notifications(
    secure_broker: SecureBroker,
) -> None:
    """audit-sink's credentials read advisering.audit in its group, never the notifications."""
    sink = secure_broker.connection("audit-sink")
    assert read_errors(sink, AUDIT, group="advisering-audit") == set()
    admin = AdminClient({**sink.confluent(), **QUIET})
    for topic in (NOTIFICATIONS, CASE_EVENTS):
        listed = admin.list_topics(topic=topic, timeout=15).topics[topic]
        assert listed.error is not None
        assert listed.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_wrong_password_is_refused(secure_broker: SecureBroker) -> None:
    """A known user with a wrong password fails SCRAM authentication (_AUTHENTICATION)."""
    wrong = KafkaConnection(bootstrap=BOOTSTRAP, protocol="SASL_SSL", sasl_username="worker",
                            sasl_password=SecretStr("not-the-password"),
                            ssl_ca_file=secure_broker.files.ca)
    errors = connection_errors(wrong)
    assert AUTHENTICATION in {error.code() for error in errors}
    assert any("invalid credentials" in error.str() for error in errors)


@pytest.mark.usefixtures("secure_broker")
@pytest.mark.parametrize("bootstrap", [BOOTSTRAP, MTLS_BOOTSTRAP])
def test_plaintext_connection_fails(bootstrap: str) -> None:
    """A client without TLS gets no metadata on either listener: the broker closes it."""
    refused_everywhere(KafkaConnection.plaintext(bootstrap))


def test_mtls_without_a_client_certificate_fails(secure_broker: SecureBroker) -> None:
    """TLS that trusts the broker but shows no certificate is refused on the mTLS listener."""
    anonymous = KafkaConnection(bootstrap=MTLS_BOOTSTRAP, protocol="SSL",
                                ssl_ca_file=secure_broker.files.ca)
    errors = refused_everywhere(anonymous)
    assert any("certificate" in error.str() for error in errors), errors


def test_a_certificate_from_another_ca_fails(
    secure_broker: SecureBroker, tmp_path: Path,
) -> None:
    """A client certificate with the super user's CN but from a CA of its own is refused."""
    foreign = kafka_certs.issue_client(kafka_certs.make_ca("advisering local CA"), "admin")
    certificate, key = tmp_path / "admin.pem", tmp_path / "admin.key"
    kafka_secure.write_private(certificate, foreign.certificate_pem())
    kafka_secure.write_private(key, foreign.key_pem())
    impostor = KafkaConnection(bootstrap=MTLS_BOOTSTRAP, protocol="SSL",
                               ssl_ca_file=secure_broker.files.ca,
                               ssl_cert_file=certificate, ssl_key_file=key)
    errors = refused_everywhere(impostor)
    assert any("certificate" in error.str() for error in errors), errors


def test_a_password_does_not_open_the_mtls_listener(secure_broker: SecureBroker) -> None:
    """The admin's SCRAM login over TLS, without a certificate, is refused on the mTLS port."""
    scram = kafka_secure.connection_for(secure_broker.files, MTLS_BOOTSTRAP, "admin")
    refused_everywhere(scram)


@pytest.mark.parametrize("component", ["admin", "worker"])
def test_a_component_certificate_does_not_open_the_controller(
    secure_broker: SecureBroker, component: str,
) -> None:
    """The controller port refuses the client CA's certificates; the mTLS port takes them."""
    files = secure_broker.files
    chain = (files.client_certificate(component), files.client_key(component))
    assert tls_api_versions(SECURE_PORT + kafka_secure.MTLS_PORT_OFFSET, *chain) == "answered"
    with pytest.raises(ssl.SSLError, match=r"CERTIFICATE_UNKNOWN|BAD_CERTIFICATE"):
        tls_api_versions(SECURE_PORT + 1, *chain)


def test_secure_and_plain_state_folders_are_not_mixed(secure_broker: SecureBroker) -> None:
    """Starting the secure broker's folder without --secure is refused, naming --fresh."""
    result = run_cli(secure_broker.env, "kafka", "start")
    assert result.returncode == 2
    assert "--fresh" in result.stderr


def component_bus_env(broker: SecureBroker, component: str, tmp_path: Path, protocol: str,
                      **extra: str) -> dict[str, str]:
    """What a component of the whole scenario runs with: bus_env, then its env file on top."""
    base = bus_env(BOOTSTRAP, ADVISERING_SOURCES_FILE=str(tmp_path / "sources.yaml"),
                   ADVISERING_PSEUDONYM_KEY=PSEUDONYM_KEY, **extra)
    return {**base, **kafka_secure.read_env_file(broker.env_file(component, protocol))}


def serve_process(env: dict[str, str], log_path: Path, port: int) -> subprocess.Popen[bytes]:
    """`advisering serve` (ingest and inbox), once its /readyz answers 200."""
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "advisering.cli", "serve"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as page:
                if page.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.5)
    terminate(process)
    raise AssertionError(f"serve not ready:\n{log_path.read_text()[-3000:]}")


def http(method: str, url: str, bearer: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request with a bearer token; the status and body (also of an error status)."""
    request = urllib.request.Request(url, data=body, method=method, headers={
        "Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return int(reply.status), bytes(reply.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


@BOTH_PROTOCOLS
def test_whole_scenario_runs_on_the_secure_broker(
    secure_broker: SecureBroker, tmp_path: Path, protocol: str,
) -> None:
    """Worker, rules deploy, sources and inbox each with their own credentials: advice arrives.

    SASL_SSL: the events go through serve's HTTP ingest. SSL (mutual TLS):
    the source's certificate publishes them with `advisering publish`, the
    worker is another Faust app (its own group and tables under the
    ``advisering-worker`` prefix acls.yaml grants), so it also reads the
    events of an earlier SASL_SSL run: the same advice, for the same caseworkers.
    """
    keys = write_demo_sources(tmp_path / "sources.yaml", load_vocabulary(ROOT / "topics"))
    port = free_port()
    token_secret = secrets.token_hex(32)
    operator = component_bus_env(secure_broker, "operator", tmp_path, protocol)
    deployed = run_cli(operator, "rules", "deploy", str(ROOT / "rules"))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    app_id = "advisering-worker" if protocol == "SASL_SSL" else "advisering-worker-mtls"
    worker = WorkerProcess(component_bus_env(secure_broker, "worker", tmp_path, protocol),
                           tmp_path / "worker.log", app_id=app_id)
    worker.start(timeout=180)
    serve = serve_process(component_bus_env(
        secure_broker, "serve", tmp_path, protocol, ADVISERING_SERVE_PORT=str(port),
        ADVISERING_TOKEN_SECRET=token_secret,
        ADVISERING_INBOX_DB=str(tmp_path / "inbox.sqlite3")), tmp_path / "serve.log", port)
    source = component_bus_env(secure_broker, "source", tmp_path, protocol)
    admin = secure_broker.connection("admin", protocol)
    try:
        for number, wave in enumerate(demo_scenario()):
            if protocol == "SSL":
                path = write_jsonl(tmp_path / f"wave-{number}.jsonl", wave)
                published = run_cli(source, "publish", str(path))
                assert published.returncode == 0, published.stdout + published.stderr
            else:
                for event in wave:
                    status, body = http("POST", f"http://127.0.0.1:{port}/api/v1/events",
                                        keys[event["source"]], orjson.dumps(event))
                    assert status == 202, body
            wait_until_idle(admin, worker.app_id,
                            [CASE_EVENTS, citizen_topic_name(worker.app_id)], 120)
        issued = run_cli(dict(operator, ADVISERING_TOKEN_SECRET=token_secret),
                         "token", "issue", "--caseworker", "bf-0042",
                         "--department", "boern-familie")
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 60
        rules: set[str] = set()
        while time.monotonic() < deadline and len(rules) < 2:
            status, body = http("GET", f"http://127.0.0.1:{port}/api/v1/notifications",
                                token)
            assert status == 200, body
            rules = set(re.findall(r'"rule":\s*"([a-z0-9-]+)"', body.decode()))
            time.sleep(0.5)
        assert rules == {"ny-boernesag-orientering", "sanktion-til-boernesag"}, (
            f"{rules}\nworker:\n{worker.log_tail()}\nserve:\n"
            f"{(tmp_path / 'serve.log').read_text()[-3000:]}")
        audit = read_topic(admin, AUDIT)
        assert len(audit) >= len(DEMO_EXPECTED)
        # acls.yaml grants the worker all it uses: no refusal was retried around.
        assert "authorization" not in worker.log_tail(10**6).lower()
    finally:
        terminate(serve)
        worker.stop()

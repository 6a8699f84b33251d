"""`kafka start --secure` without a broker: the files it writes and the broker config."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from advisering.cli.main import main
from advisering.dev import kafka_certs, kafka_secure
from advisering.dev.local_kafka import LocalKafka, LocalKafkaError, server_properties
from advisering.kafka.acls import load_acls
from advisering.kafka.connection import KafkaConnection
from advisering.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MTLS = "127.0.0.1:30001"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def worker_env(files: kafka_secure.SecureFiles,
               env_file: Callable[[str], Path]) -> tuple[dict[str, str], dict[str, str]]:
    """Make the material and env files; the passwords and the worker's ``env_file`` values."""
    passwords = kafka_secure.ensure_material(files)
    kafka_secure.write_env_files(files, "127.0.0.1:29999", passwords, MTLS)
    return passwords, kafka_secure.read_env_file(env_file("worker"))


@pytest.fixture
def files(tmp_path: Path) -> kafka_secure.SecureFiles:
    return kafka_secure.secure_files(tmp_path / "state")


def test_material_is_private_and_kept_across_starts(files: kafka_secure.SecureFiles) -> None:
    """CA, key, keystore, passwords and env files are 0600 in 0700 folders; a rerun keeps them."""
    passwords = kafka_secure.ensure_material(files)
    kafka_secure.write_env_files(files, "127.0.0.1:29999", passwords, MTLS)
    assert set(passwords) == {*kafka_secure.COMPONENTS, kafka_secure.BROKER_USER}
    assert len(set(passwords.values())) == len(passwords)  # one random password each
    assert mode(files.folder) == mode(files.clients) == 0o700
    written = [files.ca, files.ca_key, files.keystore, files.users, files.controller_ca,
               files.controller_keystore,
               *(files.env_file(c) for c in kafka_secure.COMPONENTS),
               *(files.mtls_env_file(c) for c in kafka_secure.COMPONENTS),
               *(files.client_certificate(c) for c in kafka_secure.COMPONENTS),
               *(files.client_key(c) for c in kafka_secure.COMPONENTS)]
    assert {path: mode(path) for path in written} == dict.fromkeys(written, 0o600)
    assert set(files.folder.rglob("*")) == {*written, files.clients}  # no controller CA key
    ca_before = files.ca.read_bytes()
    worker_before = files.client_certificate("worker").read_bytes()
    assert kafka_secure.ensure_material(files) == passwords
    assert files.ca.read_bytes() == ca_before
    assert files.client_certificate("worker").read_bytes() == worker_before


def test_the_broker_certificate_names_localhost_and_the_loopback_address(
    files: kafka_secure.SecureFiles,
) -> None:
    """The certificate in the keystore has SANs localhost and 127.0.0.1 and CN broker."""
    kafka_secure.ensure_material(files)
    broker = x509.load_pem_x509_certificates(files.keystore.read_bytes())[0]
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert broker.subject.rfc4514_string() == "CN=broker"


def test_env_files_configure_a_component_with_sasl_ssl(
    files: kafka_secure.SecureFiles,
) -> None:
    """An env file holds every ADVISERING_KAFKA_* variable a SASL_SSL client needs."""
    passwords, values = worker_env(files, files.env_file)
    assert values == {
        "ADVISERING_BOOTSTRAP_SERVERS": "127.0.0.1:29999",
        "ADVISERING_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ADVISERING_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ADVISERING_KAFKA_SASL_USERNAME": "worker",
        "ADVISERING_KAFKA_SASL_PASSWORD": passwords["worker"],
        "ADVISERING_KAFKA_SSL_CA_FILE": str(files.ca),
    }
    settings = Settings(**{k.removeprefix("ADVISERING_").lower(): v for k, v in values.items()})
    connection = KafkaConnection.from_settings(settings)  # the CA loads: a valid setup
    assert connection.describe()["sasl_username"] == "worker"
    assert passwords["worker"] not in repr(connection)


def test_secure_server_properties_have_no_plaintext_client_listener(
    files: kafka_secure.SecureFiles, tmp_path: Path,
) -> None:
    """SASL_SSL for clients, TLS with client certificates for the controller, deny by default."""
    listeners = kafka_secure.secure_listener_properties(29999, 30000, 30001, files,
                                                        "broker-password")
    text = server_properties(29999, 30000, tmp_path / "data", listeners)
    lines = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert lines["listeners"] == ("SASL_SSL://127.0.0.1:29999,CONTROLLER://127.0.0.1:30000,"
                                  "MTLS://127.0.0.1:30001")
    assert lines["advertised.listeners"] == "SASL_SSL://127.0.0.1:29999,MTLS://127.0.0.1:30001"
    assert lines["listener.security.protocol.map"] == (
        "CONTROLLER:SSL,SASL_SSL:SASL_SSL,MTLS:SSL")
    assert "PLAINTEXT" not in text
    assert lines["listener.name.controller.ssl.client.auth"] == "required"
    assert lines["listener.name.mtls.ssl.client.auth"] == "required"
    assert lines["listener.name.controller.ssl.truststore.location"] == str(files.controller_ca)
    assert lines["listener.name.controller.ssl.keystore.location"] == str(
        files.controller_keystore)
    assert lines["ssl.truststore.location"] == str(files.ca)
    assert "ssl.client.auth" not in lines  # SASL_SSL clients need no certificate
    assert lines["ssl.principal.mapping.rules"] == "RULE:^CN=([A-Za-z0-9._-]+)$/$1/,DEFAULT"
    assert lines["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer")
    assert lines["allow.everyone.if.no.acl.found"] == "false"
    assert lines["super.users"] == "User:admin;User:broker"
    assert lines["ssl.keystore.type"] == lines["ssl.truststore.type"] == "PEM"


def test_scram_users_are_created_at_format_time() -> None:
    """One --add-scram per component and one for the broker, SCRAM-SHA-512."""
    passwords = {user: f"pw-{user}" for user in (*kafka_secure.COMPONENTS, "broker")}
    args = kafka_secure.scram_format_args(passwords)
    assert args.count("--add-scram") == len(passwords)
    assert "SCRAM-SHA-512=[name=worker,password=pw-worker]" in args


def test_the_mode_a_broker_was_formatted_in_is_kept(tmp_path: Path) -> None:
    """A folder formatted plain is not started secure (and back) without --fresh."""
    settings = Settings(kafka_port=29990, kafka_state_dir=tmp_path)
    (tmp_path / "mode").write_text("plain\n")
    with pytest.raises(LocalKafkaError, match="--fresh"):
        LocalKafka(settings, secure=True).start()
    assert LocalKafka(settings).status().clients_dir is None
    (tmp_path / "mode").write_text("secure\n")
    assert LocalKafka(settings).status().clients_dir == tmp_path / "secure" / "clients"
    assert LocalKafka(settings).status().mtls_bootstrap == "127.0.0.1:29992"  # port + 2


def test_secure_three_node_cluster_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--brokers 3 --secure is a clear error (the secure broker is one node)."""
    assert main(["kafka", "start", "--brokers", "3", "--secure"]) == 2
    assert "--secure runs one node only" in capsys.readouterr().err


def test_printed_hints_name_the_files_never_a_password(
    files: kafka_secure.SecureFiles, capsys: pytest.CaptureFixture[str],
) -> None:
    """What start and status print about credentials: the folder, no password."""
    from advisering.cli.kafka import _print_clients  # noqa: PLC0415

    passwords = kafka_secure.ensure_material(files)
    kafka_secure.write_env_files(files, "127.0.0.1:29999", passwords, MTLS)
    _print_clients(files.clients, MTLS)
    out = capsys.readouterr().out
    assert str(files.clients) in out
    assert f"SSL (mutual TLS, client certificate CN = user) at {MTLS}" in out
    assert "worker.mtls.env" in out
    assert not any(password in out for password in passwords.values())


def apply_mapping_rule(subject: str) -> str:
    """What Kafka's ``ssl.principal.mapping.rules`` of the secure broker make of a subject DN."""
    rule = kafka_certs.PRINCIPAL_MAPPING_RULES
    assert rule.startswith("RULE:^") and rule.endswith("/$1/,DEFAULT")
    pattern = rule.removeprefix("RULE:").removesuffix("/$1/,DEFAULT")
    match = re.fullmatch(pattern, subject)
    return f"User:{match.group(1) if match else subject}"


def test_each_component_gets_a_client_certificate_its_acl_principal_names(
    files: kafka_secure.SecureFiles,
) -> None:
    """CN = component, signed by the CA, client-auth only; the rule maps it to acls.yaml's User."""
    kafka_secure.ensure_material(files)
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    principals = {entry.component: entry.principal
                  for entry in load_acls(ROOT / "topics" / "acls.yaml").principals}
    for component in kafka_secure.COMPONENTS:
        pem = files.client_certificate(component).read_bytes()
        certificate = x509.load_pem_x509_certificate(pem)
        assert kafka_certs.signed_by(pem, ca)
        assert certificate.subject.rfc4514_string() == f"CN={component}"
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
        assert not certificate.extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca
        mapped = apply_mapping_rule(certificate.subject.rfc4514_string())
        assert mapped == f"User:{component}"
        assert component == "admin" or principals[component] == mapped
    assert "admin" in kafka_secure.SUPER_USERS


@pytest.mark.parametrize("subject", [
    "CN=worker,O=evil", "O=evil,CN=worker", "CN=worker\\,x", "CN=work er", "CN=",
])
def test_a_subject_other_than_a_plain_cn_keeps_its_whole_dn(subject: str) -> None:
    """Disguised subjects map to their full DN, a principal no ACL names: never User:worker."""
    assert apply_mapping_rule(subject) == f"User:{subject}"


def test_client_certificates_follow_a_new_ca(files: kafka_secure.SecureFiles) -> None:
    """After the CA is made anew (secure/ partly deleted) every client certificate is reissued."""
    kafka_secure.ensure_material(files)
    before = files.client_certificate("source").read_bytes()
    files.ca_key.unlink()
    kafka_secure.ensure_material(files)
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    after = files.client_certificate("source").read_bytes()
    assert after != before and kafka_certs.signed_by(after, ca)
    assert not kafka_certs.signed_by(before, ca)
    files.client_key("serve").unlink()
    kafka_secure.ensure_material(files)
    assert mode(files.client_key("serve")) == 0o600


def test_mtls_env_files_configure_a_component_with_its_certificate(
    files: kafka_secure.SecureFiles,
) -> None:
    """The .mtls.env file: SSL at the mTLS port with CA, certificate and key; no password."""
    passwords, values = worker_env(files, files.mtls_env_file)
    assert values == {
        "ADVISERING_BOOTSTRAP_SERVERS": MTLS,
        "ADVISERING_KAFKA_SECURITY_PROTOCOL": "SSL",
        "ADVISERING_KAFKA_SSL_CA_FILE": str(files.ca),
        "ADVISERING_KAFKA_SSL_CERT_FILE": str(files.client_certificate("worker")),
        "ADVISERING_KAFKA_SSL_KEY_FILE": str(files.client_key("worker")),
    }
    assert passwords["worker"] not in files.mtls_env_file("worker").read_text()
    settings = Settings(**{k.removeprefix("ADVISERING_").lower(): v for k, v in values.items()})
    connection = KafkaConnection.from_settings(settings)  # certificate and key load together
    assert connection == kafka_secure.mtls_connection_for(files, MTLS, "worker")
    assert connection.confluent()["ssl.certificate.location"] == str(
        files.client_certificate("worker"))
    assert connection.describe()["client_certificate"] is True


def test_a_foreign_ca_does_not_sign_for_the_broker(files: kafka_secure.SecureFiles) -> None:
    """A certificate from another CA with the admin's CN does not verify against the broker CA."""
    kafka_secure.ensure_material(files)
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    foreign = kafka_certs.issue_client(kafka_certs.make_ca("advisering local CA"), "admin")
    assert kafka_certs.common_name(foreign.certificate) == "admin"
    assert not kafka_certs.signed_by(foreign.certificate_pem().encode(), ca)


def test_no_component_certificate_opens_the_controller_listener(
    files: kafka_secure.SecureFiles,
) -> None:
    """The controller trusts its own CA only: client and broker certificates do not chain to it."""
    kafka_secure.ensure_material(files)
    controller_ca = x509.load_pem_x509_certificate(files.controller_ca.read_bytes())
    node = x509.load_pem_x509_certificates(files.controller_keystore.read_bytes())[0]
    assert kafka_certs.signed_by(node.public_bytes(serialization.Encoding.PEM), controller_ca)
    assert kafka_certs.common_name(node) == kafka_secure.BROKER_USER
    assert controller_ca.subject != x509.load_pem_x509_certificate(files.ca.read_bytes()).subject
    for component in kafka_secure.COMPONENTS:
        assert not kafka_certs.signed_by(files.client_certificate(component).read_bytes(),
                                         controller_ca)
    broker = x509.load_pem_x509_certificates(files.keystore.read_bytes())[0]
    assert not kafka_certs.signed_by(broker.public_bytes(serialization.Encoding.PEM),
                                     controller_ca)


def test_a_secure_start_checks_the_mtls_port_too(tmp_path: Path) -> None:
    """The secure broker needs port, port+1 and port+2 free; the plain one port and port+1."""
    settings = Settings(kafka_port=29990, kafka_state_dir=tmp_path)
    assert LocalKafka(settings, secure=True).ports() == (29990, 29991, 29992)
    assert LocalKafka(settings).ports() == (29990, 29991)

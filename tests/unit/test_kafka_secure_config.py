"""`kafka start --secure` without a broker: the files it writes and the broker config."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from advisering.cli.main import main
from advisering.dev import kafka_secure
from advisering.dev.local_kafka import LocalKafka, LocalKafkaError, server_properties
from advisering.kafka.connection import KafkaConnection
from advisering.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def files(tmp_path: Path) -> kafka_secure.SecureFiles:
    return kafka_secure.secure_files(tmp_path / "state")


def test_material_is_private_and_kept_across_starts(files: kafka_secure.SecureFiles) -> None:
    """CA, key, keystore, passwords and env files are 0600 in 0700 folders; a rerun keeps them."""
    passwords = kafka_secure.ensure_material(files)
    kafka_secure.write_env_files(files, "127.0.0.1:29999", passwords)
    assert set(passwords) == {*kafka_secure.COMPONENTS, kafka_secure.BROKER_USER}
    assert len(set(passwords.values())) == len(passwords)  # one random password each
    assert mode(files.folder) == mode(files.clients) == 0o700
    written = [files.ca, files.ca_key, files.keystore, files.users,
               *(files.env_file(c) for c in kafka_secure.COMPONENTS)]
    assert {path: mode(path) for path in written} == dict.fromkeys(written, 0o600)
    ca_before = files.ca.read_bytes()
    assert kafka_secure.ensure_material(files) == passwords
    assert files.ca.read_bytes() == ca_before


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
    passwords = kafka_secure.ensure_material(files)
    kafka_secure.write_env_files(files, "127.0.0.1:29999", passwords)
    values = kafka_secure.read_env_file(files.env_file("worker"))
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
    listeners = kafka_secure.secure_listener_properties(29999, 30000, files, "broker-password")
    text = server_properties(29999, 30000, tmp_path / "data", listeners)
    lines = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert lines["listeners"] == "SASL_SSL://127.0.0.1:29999,CONTROLLER://127.0.0.1:30000"
    assert lines["advertised.listeners"] == "SASL_SSL://127.0.0.1:29999"
    assert lines["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert "PLAINTEXT" not in text
    assert lines["listener.name.controller.ssl.client.auth"] == "required"
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
    kafka_secure.write_env_files(files, "127.0.0.1:29999", passwords)
    _print_clients(files.clients)
    out = capsys.readouterr().out
    assert str(files.clients) in out
    assert not any(password in out for password in passwords.values())

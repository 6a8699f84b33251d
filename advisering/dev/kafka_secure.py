"""`advisering kafka start --secure`: the local broker as a secured production one would be.

A private CA and a broker certificate (``localhost`` and ``127.0.0.1``) are
made on the first secure start, with one random SCRAM-SHA-512 password per
component; they live in ``<state>/secure/`` (folder 0700, files 0600) and are
kept across ``--fresh``, so the env files stay valid. Clients reach the
broker only through a ``SASL_SSL`` listener (TLS, then SCRAM); there is no
plaintext listener for clients. The controller listener is TLS with client
certificates (the broker's own, whose CN maps to ``User:broker``), so no
unauthenticated connection reaches the controller either. The
``StandardAuthorizer`` denies what no ACL allows
(``allow.everyone.if.no.acl.found=false``); ``admin`` and the broker itself
are super users, every other component gets what ``topics/acls.yaml`` grants
(``advisering topics apply``).

The SCRAM users are created when the storage is formatted
(``kafka-storage format --add-scram``); their passwords are written to one
env file per component (``<state>/secure/clients/<component>.env``) holding
the ``ADVISERING_KAFKA_*`` variables, so ``set -a; . worker.env; set +a``
configures a process. Nothing here prints or logs a password; the storage
tool takes the passwords on its command line, so they are visible to the
machine's other users in the process list for the second the format lasts
(a development broker; the state folder itself is private).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from advisering.kafka.connection import KafkaConnection
from advisering.privatefiles import FILE_MODE, private_folder

#: The SCRAM users, one per component; ``admin`` is a super user (it applies topics and ACLs).
COMPONENTS = ("admin", "operator", "source", "serve", "worker", "audit-sink")
#: The broker's own principal: its SCRAM user (inter-broker) and its certificate's CN.
BROKER_USER = "broker"
SUPER_USERS = ("admin", BROKER_USER)
MECHANISM = "SCRAM-SHA-512"
#: The certificates are for development: valid two years, then `rm -r <state>/secure`.
VALIDITY = dt.timedelta(days=730)
#: Written at format time; a broker formatted one way is not started the other way.
MODE_FILE = "mode"


@dataclass(frozen=True)
class SecureFiles:
    """Where the secure broker's CA, certificate, passwords and client env files are."""

    folder: Path

    @property
    def ca(self) -> Path:
        """The CA certificate (PEM) clients check the broker against."""
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        """The CA's private key (only needed to sign more certificates)."""
        return self.folder / "ca.key"

    @property
    def keystore(self) -> Path:
        """The broker's private key and certificate chain, one PEM file (Kafka's PEM keystore)."""
        return self.folder / "broker.pem"

    @property
    def users(self) -> Path:
        """The SCRAM passwords by user (JSON), the source of the env files."""
        return self.folder / "users.json"

    @property
    def clients(self) -> Path:
        """The folder of the per-component env files."""
        return self.folder / "clients"

    def env_file(self, component: str) -> Path:
        """The env file of ``component`` (``ADVISERING_KAFKA_*`` for this broker)."""
        return self.clients / f"{component}.env"


def secure_files(state_dir: Path) -> SecureFiles:
    """The secure material of the broker whose state folder is ``state_dir``."""
    return SecureFiles(state_dir / "secure")


def ensure_material(files: SecureFiles) -> dict[str, str]:
    """Create the CA, the broker certificate and the passwords unless present; the passwords.

    Returns the password of every SCRAM user (components and the broker).
    """
    private_folder(files.folder)
    if not (files.ca.exists() and files.ca_key.exists() and files.keystore.exists()):
        _write_certificates(files)
    passwords: dict[str, str] = {}
    if files.users.exists():
        passwords = {str(k): str(v) for k, v in json.loads(files.users.read_text()).items()}
    missing = [user for user in (*COMPONENTS, BROKER_USER) if user not in passwords]
    if missing:
        # Hex: nothing the storage tool's `[name=...,password=...]` syntax could misread.
        passwords.update({user: secrets.token_hex(24) for user in missing})
        write_private(files.users, json.dumps(passwords, indent=2) + "\n")
    return passwords


def write_env_files(files: SecureFiles, bootstrap: str, passwords: dict[str, str]) -> None:
    """Write one env file per component (0600) for the broker at ``bootstrap``."""
    private_folder(files.clients)
    for component in COMPONENTS:
        write_private(files.env_file(component), client_env(
            component, bootstrap, passwords[component], files.ca))


def client_env(component: str, bootstrap: str, password: str, ca_file: Path) -> str:
    """The text of one component's env file (shell syntax, values single-quoted)."""
    values = {
        "ADVISERING_BOOTSTRAP_SERVERS": bootstrap,
        "ADVISERING_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ADVISERING_KAFKA_SASL_MECHANISM": MECHANISM,
        "ADVISERING_KAFKA_SASL_USERNAME": component,
        "ADVISERING_KAFKA_SASL_PASSWORD": password,
        "ADVISERING_KAFKA_SSL_CA_FILE": str(ca_file),
    }
    lines = [f"# The {component} component on the local secure broker "
             "(advisering kafka start --secure).",
             "# Use: set -a; . this-file; set +a"]
    lines += [f"{name}='{value}'" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of an env file written by :func:`write_env_files`."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name] = value.strip("'")
    return values


def connection_for(files: SecureFiles, bootstrap: str, user: str) -> KafkaConnection:
    """A SASL_SSL connection to the secure broker as ``user`` (its stored password)."""
    passwords = json.loads(files.users.read_text())
    return KafkaConnection(bootstrap=bootstrap, protocol="SASL_SSL", sasl_username=user,
                           sasl_password=SecretStr(passwords[user]), ssl_ca_file=files.ca)


def admin_connection(files: SecureFiles, bootstrap: str) -> KafkaConnection:
    """The super user's connection, for `topics apply`, readiness checks and tests."""
    return connection_for(files, bootstrap, "admin")


def scram_format_args(passwords: dict[str, str]) -> list[str]:
    """``kafka-storage format`` arguments creating every SCRAM user with its password."""
    args: list[str] = []
    for user in (*COMPONENTS, BROKER_USER):
        args += ["--add-scram", f"{MECHANISM}=[name={user},password={passwords[user]}]"]
    return args


def secure_listener_properties(port: int, controller_port: int, files: SecureFiles,
                               broker_password: str) -> list[str]:
    """The listener, TLS, SASL and authorizer lines of the secure broker's server.properties.

    Clients: ``SASL_SSL`` only. Controller: TLS with a client certificate
    required, the certificate's CN being the principal. Inter-broker: the
    ``SASL_SSL`` listener as ``User:broker``.
    """
    jaas = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{BROKER_USER}" password="{broker_password}";')
    return [
        f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=SASL_SSL",
        "listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={files.keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={files.ca}",
        "ssl.endpoint.identification.algorithm=https",
        "listener.name.controller.ssl.client.auth=required",
        "ssl.principal.mapping.rules=RULE:^CN=([A-Za-z0-9._-]+)$/$1/,DEFAULT",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        "super.users=" + ";".join(f"User:{user}" for user in SUPER_USERS),
    ]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (also when the file existed with another)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _write_certificates(files: SecureFiles) -> None:
    """A new CA and a broker certificate it signed (RSA 2048, SHA-256)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(_name("advisering local CA"))
          .issuer_name(_name("advisering local CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    broker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    broker = (x509.CertificateBuilder().subject_name(_name(BROKER_USER))
              .issuer_name(ca.subject).public_key(broker_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                    ExtendedKeyUsageOID.CLIENT_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    write_private(files.ca, ca_pem)
    write_private(files.ca_key, _pem_key(ca_key))
    write_private(files.keystore, _pem_key(broker_key)
                  + broker.public_bytes(serialization.Encoding.PEM).decode() + ca_pem)

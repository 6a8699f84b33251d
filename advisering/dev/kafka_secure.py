"""`advisering kafka start --secure`: the local broker as a secured production one would be.

A private CA and a broker certificate (``localhost`` and ``127.0.0.1``) are
made on the first secure start, with one random SCRAM-SHA-512 password and
one client certificate (``CN=<component>``, signed by that CA) per
component; they live in ``<state>/secure/`` (folders 0700, files 0600) and
are kept across ``--fresh``, so the env files stay valid. Clients reach the
broker through two listeners, both TLS, neither plaintext:

* ``SASL_SSL`` on the broker port: TLS, then a SCRAM login;
* ``MTLS`` (security protocol ``SSL``) on the port plus :data:`MTLS_PORT_OFFSET`:
  TLS with a client certificate required (mutual TLS). The principal mapping
  rule (:data:`advisering.dev.kafka_certs.PRINCIPAL_MAPPING_RULES`) makes
  ``CN=worker`` the principal ``User:worker``, the same one the worker's SCRAM
  user has, so ``topics/acls.yaml`` grants each component the same rights
  whichever way it authenticates.

The controller listener (port plus one) is TLS with a client certificate
required too, from a CA of its own (:attr:`SecureFiles.controller_keystore`):
its key is dropped once it signed the node's controller certificate, so the
components' certificates, signed by the client CA, do not open the
controller, and nobody can make one that does. The
controller certificate's CN maps to ``User:broker``. The
``StandardAuthorizer`` denies what no ACL allows
(``allow.everyone.if.no.acl.found=false``); ``admin`` and the broker itself
are super users, every other component gets what ``topics/acls.yaml`` grants
(``advisering topics apply``).

The SCRAM users are created when the storage is formatted
(``kafka-storage format --add-scram``). Each component gets two env files in
``<state>/secure/clients/`` holding the ``ADVISERING_KAFKA_*`` variables:
``<component>.env`` (SASL_SSL, its password) and ``<component>.mtls.env``
(SSL, its certificate ``<component>.pem`` and key ``<component>.key``), so
``set -a; . worker.env; set +a`` configures a process. Nothing here prints
or logs a password; the storage tool takes the passwords on its command
line, so they are visible to the machine's other users in the process list
for the second the format lasts (a development broker; the state folder
itself is private).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from advisering.dev import kafka_certs
from advisering.kafka.connection import KafkaConnection
from advisering.privatefiles import FILE_MODE, private_folder

#: The SCRAM users, one per component; ``admin`` is a super user (it applies topics and ACLs).
COMPONENTS = ("admin", "operator", "source", "serve", "worker", "audit-sink")
#: The broker's own principal: its SCRAM user (inter-broker) and its certificate's CN.
BROKER_USER = "broker"
SUPER_USERS = ("admin", BROKER_USER)
MECHANISM = "SCRAM-SHA-512"
#: The mutual-TLS listener's port is the broker port plus this (the controller's is plus one).
MTLS_PORT_OFFSET = 2
#: The name of that listener in server.properties (its security protocol is SSL).
MTLS_LISTENER = "MTLS"
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
    def controller_ca(self) -> Path:
        """The controller CA's certificate: the only CA the controller listener trusts."""
        return self.folder / "controller-ca.pem"

    @property
    def controller_keystore(self) -> Path:
        """The node's controller key and certificate chain (signed by the controller CA)."""
        return self.folder / "controller.pem"

    @property
    def users(self) -> Path:
        """The SCRAM passwords by user (JSON), the source of the env files."""
        return self.folder / "users.json"

    @property
    def clients(self) -> Path:
        """The folder of the per-component env files."""
        return self.folder / "clients"

    def env_file(self, component: str) -> Path:
        """The SASL_SSL env file of ``component`` (``ADVISERING_KAFKA_*`` for this broker)."""
        return self.clients / f"{component}.env"

    def mtls_env_file(self, component: str) -> Path:
        """The mutual-TLS (``SSL``) env file of ``component``."""
        return self.clients / f"{component}.mtls.env"

    def client_certificate(self, component: str) -> Path:
        """The client certificate of ``component`` (PEM, subject ``CN=<component>``)."""
        return self.clients / f"{component}.pem"

    def client_key(self, component: str) -> Path:
        """The unencrypted private key of ``component``'s client certificate (PEM, 0600)."""
        return self.clients / f"{component}.key"


def secure_files(state_dir: Path) -> SecureFiles:
    """The secure material of the broker whose state folder is ``state_dir``."""
    return SecureFiles(state_dir / "secure")


def ensure_material(files: SecureFiles) -> dict[str, str]:
    """Create the CA, the certificates and the passwords unless present; the passwords.

    A client certificate that is missing, lacks its key or was not signed by
    the current CA (``secure/`` partly deleted) is made anew.
    Returns the password of every SCRAM user (components and the broker).
    """
    private_folder(files.folder)
    if not (files.ca.exists() and files.ca_key.exists() and files.keystore.exists()):
        _write_certificates(files)
    if not (files.controller_ca.exists() and files.controller_keystore.exists()):
        _write_controller_certificates(files)
    _ensure_client_certificates(files)
    passwords: dict[str, str] = {}
    if files.users.exists():
        passwords = {str(k): str(v) for k, v in json.loads(files.users.read_text()).items()}
    missing = [user for user in (*COMPONENTS, BROKER_USER) if user not in passwords]
    if missing:
        # Hex: nothing the storage tool's `[name=...,password=...]` syntax could misread.
        passwords.update({user: secrets.token_hex(24) for user in missing})
        write_private(files.users, json.dumps(passwords, indent=2) + "\n")
    return passwords


def write_env_files(files: SecureFiles, bootstrap: str, passwords: dict[str, str],
                    mtls_bootstrap: str) -> None:
    """Write each component's env files (0600): SASL_SSL at ``bootstrap``, SSL at the other."""
    private_folder(files.clients)
    for component in COMPONENTS:
        write_private(files.env_file(component), client_env(
            component, bootstrap, passwords[component], files.ca))
        write_private(files.mtls_env_file(component), mtls_client_env(
            component, mtls_bootstrap, files))


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
    return _env_text(f"The {component} component on the local secure broker "
                     "(advisering kafka start --secure), SASL_SSL.", values)


def mtls_client_env(component: str, bootstrap: str, files: SecureFiles) -> str:
    """The text of one component's mutual-TLS env file: its certificate, no password."""
    values = {
        "ADVISERING_BOOTSTRAP_SERVERS": bootstrap,
        "ADVISERING_KAFKA_SECURITY_PROTOCOL": "SSL",
        "ADVISERING_KAFKA_SSL_CA_FILE": str(files.ca),
        "ADVISERING_KAFKA_SSL_CERT_FILE": str(files.client_certificate(component)),
        "ADVISERING_KAFKA_SSL_KEY_FILE": str(files.client_key(component)),
    }
    return _env_text(f"The {component} component on the local secure broker "
                     "(advisering kafka start --secure), mutual TLS.", values)


def _env_text(title: str, values: dict[str, str]) -> str:
    lines = [f"# {title}", "# Use: set -a; . this-file; set +a"]
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


def mtls_connection_for(files: SecureFiles, bootstrap: str, user: str) -> KafkaConnection:
    """A mutual-TLS (``SSL``) connection to the secure broker with ``user``'s certificate."""
    return KafkaConnection(bootstrap=bootstrap, protocol="SSL", ssl_ca_file=files.ca,
                           ssl_cert_file=files.client_certificate(user),
                           ssl_key_file=files.client_key(user))


def admin_connection(files: SecureFiles, bootstrap: str) -> KafkaConnection:
    """The super user's connection, for `topics apply`, readiness checks and tests."""
    return connection_for(files, bootstrap, "admin")


def scram_format_args(passwords: dict[str, str]) -> list[str]:
    """``kafka-storage format`` arguments creating every SCRAM user with its password."""
    args: list[str] = []
    for user in (*COMPONENTS, BROKER_USER):
        args += ["--add-scram", f"{MECHANISM}=[name={user},password={passwords[user]}]"]
    return args


def secure_listener_properties(port: int, controller_port: int, mtls_port: int,
                               files: SecureFiles, broker_password: str) -> list[str]:
    """The listener, TLS, SASL and authorizer lines of the secure broker's server.properties.

    Clients: ``SASL_SSL`` on ``port`` and mutual TLS on ``mtls_port``.
    Controller: TLS with a client certificate required. On both
    certificate listeners the certificate's CN is the principal. Inter-broker:
    the ``SASL_SSL`` listener as ``User:broker``.
    """
    mtls = MTLS_LISTENER
    jaas = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{BROKER_USER}" password="{broker_password}";')
    return [
        f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
        f"{mtls}://127.0.0.1:{mtls_port}",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{port},{mtls}://127.0.0.1:{mtls_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=SASL_SSL",
        f"listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL,{mtls}:SSL",
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={files.keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={files.ca}",
        "ssl.endpoint.identification.algorithm=https",
        "listener.name.controller.ssl.client.auth=required",
        "listener.name.controller.ssl.keystore.type=PEM",
        f"listener.name.controller.ssl.keystore.location={files.controller_keystore}",
        "listener.name.controller.ssl.truststore.type=PEM",
        f"listener.name.controller.ssl.truststore.location={files.controller_ca}",
        f"listener.name.{mtls.lower()}.ssl.client.auth=required",
        f"ssl.principal.mapping.rules={kafka_certs.PRINCIPAL_MAPPING_RULES}",
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


def _write_certificates(files: SecureFiles) -> None:
    """A new CA and a broker certificate it signed (old client certificates stop verifying)."""
    ca = kafka_certs.make_ca()
    broker = kafka_certs.issue_broker(ca, BROKER_USER)
    write_private(files.ca, ca.certificate_pem())
    write_private(files.ca_key, ca.key_pem())
    write_private(files.keystore, broker.key_pem() + broker.certificate_pem()
                  + ca.certificate_pem())


def _write_controller_certificates(files: SecureFiles) -> None:
    """The controller listener's own CA and node certificate; the CA's key is not kept."""
    ca = kafka_certs.make_ca("advisering local controller CA")
    node = kafka_certs.issue_broker(ca, BROKER_USER)
    write_private(files.controller_ca, ca.certificate_pem())
    write_private(files.controller_keystore, node.key_pem() + node.certificate_pem()
                  + ca.certificate_pem())


def _ensure_client_certificates(files: SecureFiles) -> None:
    """One client certificate per component, signed by the current CA (made where missing)."""
    private_folder(files.clients)
    ca = kafka_certs.load(files.ca.read_bytes(), files.ca_key.read_bytes())
    for component in COMPONENTS:
        certificate, key = files.client_certificate(component), files.client_key(component)
        if (certificate.exists() and key.exists()
                and kafka_certs.signed_by(certificate.read_bytes(), ca.certificate)):
            continue
        issued = kafka_certs.issue_client(ca, component)
        write_private(key, issued.key_pem())
        write_private(certificate, issued.certificate_pem())

"""How every Kafka client of advisering connects: one frozen, validated value.

A :class:`KafkaConnection` holds the bootstrap servers and the security
settings of ``ADVISERING_KAFKA_*`` (docs/operators.md "Connecting to a
secured Kafka"). It is built from the one Settings object
(:meth:`KafkaConnection.from_settings`) and checked when it is built, so a
process with a wrong combination stops at start-up with an error naming the
variable, instead of connecting in plaintext or failing later in a library
thread. Every client is made from it: :meth:`confluent` renders the
librdkafka properties (producers, consumers, admin clients), and
:meth:`faust_credentials` Faust's ``broker_credentials``, which
faust-streaming hands to aiokafka unchanged (``tests/unit/test_kafka_connection.py``
checks that). Nothing here takes a bare bootstrap string: a client built
without this value cannot pass mypy (``client_config`` takes one), and
``tests/unit/test_kafka_connection.py`` scans the package for one built another way.

The password is a ``SecretStr`` from the environment to the two renderings
that must hand it to a library; it is in no repr, log line or error text.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

    from advisering.settings import Settings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512"]
PROTOCOLS: tuple[SecurityProtocol, ...] = ("PLAINTEXT", "SSL", "SASL_SSL")

PROTOCOL_VAR = "ADVISERING_KAFKA_SECURITY_PROTOCOL"
USERNAME_VAR = "ADVISERING_KAFKA_SASL_USERNAME"
PASSWORD_VAR = "ADVISERING_KAFKA_SASL_PASSWORD"  # noqa: S105 - the variable's name
CA_VAR = "ADVISERING_KAFKA_SSL_CA_FILE"
CERT_VAR = "ADVISERING_KAFKA_SSL_CERT_FILE"
KEY_VAR = "ADVISERING_KAFKA_SSL_KEY_FILE"

#: librdkafka properties only a KafkaConnection sets: a client's own extra
#: properties may not override them (``client_config`` refuses).
SECURITY_PROPERTIES = frozenset({
    "bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.mechanisms",
    "sasl.username", "sasl.password", "ssl.ca.location", "ssl.certificate.location",
    "ssl.key.location", "ssl.endpoint.identification.algorithm",
})


class KafkaSecurityError(ValueError):
    """The Kafka security settings do not fit together; the message names the variable."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where the Kafka cluster is and how to authenticate to it, checked when built.

    ``PLAINTEXT`` takes no credentials and no files (set ones would be
    silently ignored, so they are an error). ``SSL`` is TLS, with a client
    certificate (mutual TLS) when ``ssl_cert_file`` and ``ssl_key_file`` are
    given. ``SASL_SSL`` is TLS plus SCRAM-SHA-512 with a username and
    password (a client certificate is allowed too). Without ``ssl_ca_file``
    the system's CA certificates verify the brokers. Every file must exist
    and be readable, and the certificate, key and CA must load.
    """

    bootstrap: str
    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None

    def __post_init__(self) -> None:
        if not any(server.strip() for server in self.bootstrap.split(",")):
            raise KafkaSecurityError("ADVISERING_BOOTSTRAP_SERVERS is empty")
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"{PROTOCOL_VAR} must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        self._check_combination()
        for variable, path in self._files():
            _check_readable(variable, path)
        if self.protocol != "PLAINTEXT":
            self.ssl_context()  # the CA, certificate and key load now, not in a client thread

    @classmethod
    def plaintext(cls, bootstrap: str) -> KafkaConnection:
        """An unauthenticated, unencrypted connection: a local development broker only."""
        return cls(bootstrap=bootstrap)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        """The connection ``ADVISERING_BOOTSTRAP_SERVERS`` and ``ADVISERING_KAFKA_*`` describe."""
        return cls(
            bootstrap=settings.bootstrap_servers,
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ssl_ca_file=settings.kafka_ssl_ca_file,
            ssl_cert_file=settings.kafka_ssl_cert_file,
            ssl_key_file=settings.kafka_ssl_key_file,
        )

    def _files(self) -> list[tuple[str, Path]]:
        named = ((CA_VAR, self.ssl_ca_file), (CERT_VAR, self.ssl_cert_file),
                 (KEY_VAR, self.ssl_key_file))
        return [(variable, path) for variable, path in named if path is not None]

    def _password(self) -> str | None:
        secret = self.sasl_password.get_secret_value() if self.sasl_password else ""
        return secret or None

    def _check_combination(self) -> None:
        credentials = [name for name, value in ((USERNAME_VAR, self.sasl_username),
                                                (PASSWORD_VAR, self._password())) if value]
        if self.protocol == "PLAINTEXT":
            unused = credentials + [variable for variable, _ in self._files()]
            if unused:
                raise KafkaSecurityError(
                    f"{PROTOCOL_VAR} is PLAINTEXT (no TLS, no authentication), but "
                    f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} set and would "
                    f"be ignored: set {PROTOCOL_VAR} to SSL or SASL_SSL, or unset them")
        elif self.protocol == "SSL" and credentials:
            raise KafkaSecurityError(
                f"{PROTOCOL_VAR} is SSL, which authenticates by client certificate, but "
                f"{', '.join(credentials)} {'is' if len(credentials) == 1 else 'are'} set "
                f"and would be ignored: use SASL_SSL for a username and password")
        elif self.protocol == "SASL_SSL" and len(credentials) < 2:
            missing = [v for v in (USERNAME_VAR, PASSWORD_VAR) if v not in credentials]
            raise KafkaSecurityError(
                f"{PROTOCOL_VAR} is SASL_SSL, which needs {USERNAME_VAR} and {PASSWORD_VAR}: "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            given, other = ((CERT_VAR, KEY_VAR) if self.ssl_key_file is None
                            else (KEY_VAR, CERT_VAR))
            raise KafkaSecurityError(
                f"{given} is set without {other}: a client certificate needs its private "
                "key, and a key its certificate")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context aiokafka needs (none for PLAINTEXT): server auth, hostname checked.

        Built as ``aiokafka.helpers.create_ssl_context`` builds one, except
        that an encrypted private key is refused at once: OpenSSL would
        otherwise ask for its passphrase on the terminal.
        """
        if self.protocol == "PLAINTEXT":
            return None
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH,
                cafile=str(self.ssl_ca_file) if self.ssl_ca_file else None)
        except (ssl.SSLError, OSError) as exc:
            raise KafkaSecurityError(
                f"{CA_VAR}: {self.ssl_ca_file} holds no PEM CA certificate "
                f"({_reason(exc)})") from None
        if self.ssl_cert_file is not None:
            try:
                context.load_cert_chain(str(self.ssl_cert_file), str(self.ssl_key_file),
                                        password=_refuse_encrypted_key)
            except (ssl.SSLError, OSError) as exc:
                raise KafkaSecurityError(
                    f"{CERT_VAR} and {KEY_VAR}: {self.ssl_cert_file} and {self.ssl_key_file} "
                    f"are not a PEM certificate and its unencrypted private key "
                    f"({_reason(exc)})") from None
        return context

    def confluent(self) -> dict[str, str]:
        """The librdkafka properties of this connection (``bootstrap.servers`` and security).

        Holds the password in clear (librdkafka needs it): never log the result.
        """
        config = {"bootstrap.servers": self.bootstrap, "security.protocol": self.protocol}
        if self.protocol == "PLAINTEXT":
            return config
        # librdkafka's default, written down: the broker's name must match its certificate.
        config["ssl.endpoint.identification.algorithm"] = "https"
        if self.protocol == "SASL_SSL":
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username or ""
            config["sasl.password"] = self._password() or ""
        for key, path in (("ssl.ca.location", self.ssl_ca_file),
                          ("ssl.certificate.location", self.ssl_cert_file),
                          ("ssl.key.location", self.ssl_key_file)):
            if path is not None:
                config[key] = str(path)
        return config

    def faust_broker_urls(self) -> list[str]:
        """Faust's broker URLs of the bootstrap list (``kafka://``: the aiokafka driver)."""
        return [f"kafka://{server.strip()}" for server in self.bootstrap.split(",")
                if server.strip()]

    def faust_credentials(self) -> CredentialsT | None:
        """Faust's ``broker_credentials`` (none for PLAINTEXT), which it hands to aiokafka.

        faust-streaming 0.15.3 turns ``SSLCredentials`` into ``security_protocol=SSL``
        with the context, and ``SASLCredentials`` with a context into ``SASL_SSL``
        with ``sasl_mechanism``, ``sasl_plain_username`` and ``sasl_plain_password``
        (``credentials_to_aiokafka_auth``), for its consumer, producer and topic
        creation alike; aiokafka 0.14 speaks SCRAM-SHA-512.
        """
        import faust  # noqa: PLC0415 - only the worker needs Faust

        context = self.ssl_context()
        if context is None:
            return None
        if self.protocol == "SSL":
            return faust.SSLCredentials(context)
        return faust.SASLCredentials(username=self.sasl_username, password=self._password(),
                                     ssl_context=context, mechanism=self.sasl_mechanism)

    def describe(self) -> dict[str, Any]:
        """What a log line may say about this connection (no password)."""
        return {"bootstrap": self.bootstrap, "security_protocol": self.protocol,
                "sasl_username": self.sasl_username if self.protocol == "SASL_SSL" else None,
                "client_certificate": self.ssl_cert_file is not None}


def _check_readable(variable: str, path: Path) -> None:
    """Raise naming ``variable`` unless ``path`` is a file this process can read."""
    if not path.exists():
        raise KafkaSecurityError(f"{variable}: {path} does not exist")
    if not path.is_file():
        raise KafkaSecurityError(f"{variable}: {path} is not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise KafkaSecurityError(f"{variable}: cannot read {path} ({_reason(exc)})") from None


def _refuse_encrypted_key() -> str:
    raise KafkaSecurityError(
        f"{KEY_VAR} is an encrypted private key; advisering takes an unencrypted PEM key "
        "(keep it in a Secret mounted read-only, mode 0400)")


def _reason(exc: BaseException) -> str:
    """The short reason of an OS or TLS error, without a traceback."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__

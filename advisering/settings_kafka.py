"""The Kafka security settings, a part of the one ``Settings`` object (which inherits them).

Kept in their own module so ``advisering.settings`` stays readable; they are
checked together by ``advisering.kafka.connection.KafkaConnection`` and read
only through ``Settings``, never on their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings


class KafkaSecuritySettings(BaseSettings):
    """``ADVISERING_KAFKA_*`` security fields (names fixed by DESIGN.md "Security")."""

    # Security of every Kafka client (docs/operators.md "Connecting to a secured Kafka";
    # checked together by advisering.kafka.connection.KafkaConnection).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="`PLAINTEXT`, `SSL` (TLS, mutual with a client certificate) or "
        "`SASL_SSL` (TLS and SCRAM-SHA-512) (see [Connecting to a secured "
        "Kafka](operators.md#connecting-to-a-secured-kafka))",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="the SASL mechanism (`SASL_SSL` only)"
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="the SCRAM user (`SASL_SSL` only)"
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="the SCRAM user's password (`SASL_SSL` only; never logged)"
    )
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM CA certificate(s) the brokers' certificates are checked against; "
        "none means the system's CAs",
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for mutual TLS (with the key file)"
    )
    kafka_ssl_key_file: Path | None = Field(
        default=None, description="the client certificate's unencrypted PEM private key"
    )

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_kafka(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_ca_file",
                     "kafka_ssl_cert_file", "kafka_ssl_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty variable (a template's blank value) means unset, not the path "." .
        return None if isinstance(value, str) and not value.strip() else value

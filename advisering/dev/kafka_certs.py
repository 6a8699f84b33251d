"""The X.509 material of the local secure broker: a private CA and what it signs.

Kept apart from :mod:`advisering.dev.kafka_secure` (which decides where the
files live and what the broker is told) so the certificate details are in
one place, and so a test can make a CA of its own, the same way, to show
that a certificate from another CA is refused. Everything is RSA 2048 with
SHA-256, valid :data:`VALIDITY`: development material, not a production PKI.

A client certificate's subject is only ``CN=<user>``; the broker's
``ssl.principal.mapping.rules`` (:data:`PRINCIPAL_MAPPING_RULES`) turn it into
``User:<user>``, the principal ``topics/acls.yaml`` already names for that
component's SCRAM user, so one ACL declaration covers both protocols.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The certificates are for development: valid two years, then `rm -r <state>/secure`.
VALIDITY = dt.timedelta(days=730)
#: A subject of exactly ``CN=<name>`` (letters, digits, ``._-``) becomes ``User:<name>``;
#: any other subject keeps its whole DN (``User:CN=...,O=...``), which no ACL names.
PRINCIPAL_MAPPING_RULES = "RULE:^CN=([A-Za-z0-9._-]+)$/$1/,DEFAULT"
#: The names the broker's certificate is valid for (clients check them).
BROKER_DNS = "localhost"
BROKER_IP = "127.0.0.1"


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    def certificate_pem(self) -> str:
        """The certificate alone, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self) -> str:
        """The private key, unencrypted PKCS#8 PEM (clients read it without a passphrase)."""
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(subject: str, issuer: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY))


def make_ca(common: str = "advisering local CA") -> Issued:
    """A new self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = (
        _builder(common, _name(common), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .sign(key, hashes.SHA256()))
    return Issued(certificate, key)


def issue_broker(ca: Issued, common: str) -> Issued:
    """The broker's certificate: ``localhost`` and ``127.0.0.1``, server and client use.

    Client use too: the node presents its controller certificate to its own
    controller listener.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names = [x509.DNSName(BROKER_DNS), x509.IPAddress(ipaddress.ip_address(BROKER_IP))]
    certificate = (
        _builder(common, ca.certificate.subject, key)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256()))
    return Issued(certificate, key)


def issue_client(ca: Issued, user: str) -> Issued:
    """A client certificate with subject ``CN=<user>``, for client authentication only."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = (
        _builder(user, ca.certificate.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(ca.key, hashes.SHA256()))
    return Issued(certificate, key)


def load(certificate_pem: bytes, key_pem: bytes) -> Issued:
    """The certificate and key :meth:`Issued.certificate_pem` and :meth:`Issued.key_pem` wrote."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return Issued(x509.load_pem_x509_certificate(certificate_pem), key)


def signed_by(certificate_pem: bytes, ca: x509.Certificate) -> bool:
    """Whether the PEM certificate was issued by ``ca`` (its signature checks out)."""
    try:
        x509.load_pem_x509_certificate(certificate_pem).verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def common_name(certificate: x509.Certificate) -> str:
    """The subject's CN (what the principal mapping rule makes the user name)."""
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""

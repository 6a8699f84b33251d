"""A throwaway CA and client certificate for tests of the Kafka TLS settings (no broker)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a client certificate it signed with its key, and bad variants."""

    ca: Path
    cert: Path
    key: Path
    other_key: Path  # a valid key that does not match ``cert``
    encrypted_key: Path  # ``key`` encrypted with a passphrase
    garbage: Path  # not PEM at all


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def make_pki(folder: Path) -> Pki:
    """Write the files into ``folder``: P-256 keys, certificates valid for a day."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("test-ca")).issuer_name(_name("test-ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (x509.CertificateBuilder().subject_name(_name("advisering-worker"))
              .issuer_name(ca.subject).public_key(client_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=1))
              .sign(ca_key, hashes.SHA256()))
    pki = Pki(ca=folder / "ca.pem", cert=folder / "client.pem", key=folder / "client.key",
              other_key=folder / "other.key", encrypted_key=folder / "encrypted.key",
              garbage=folder / "garbage.pem")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(_pem_key(client_key))
    pki.other_key.write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    pki.encrypted_key.write_bytes(_pem_key(client_key, b"a passphrase"))
    pki.garbage.write_text("not a certificate\n")
    for path in (pki.key, pki.other_key, pki.encrypted_key):
        path.chmod(0o600)
    return pki

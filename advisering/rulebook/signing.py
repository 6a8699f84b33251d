"""Signed rule sets: only who holds the operators' private key can deploy rules.

``rules deploy`` signs each set's manifest with an Ed25519 private key that
only operators hold; every worker verifies it against one or more public
keys and refuses a set that is unsigned, signed by a key it does not know,
or whose signature does not match. Ed25519 rather than an HMAC: with an HMAC
every worker would hold the very key that makes valid sets, so whoever can
read one worker's secrets could deploy rules; a worker holds only public
keys, which sign nothing.

What is signed (:func:`canonical_manifest`) is the UTF-8 JSON, keys sorted,
no whitespace, of ``{"format": "advisering-ruleset/1", "key_id", "version",
"deployed", "rules": {rule id: SHA-256 of the rule's JSON}}``: the manifest
without its signature. The rule hashes bind every rule's content, so a
changed byte in any rule, a changed version, time or key id breaks the
signature. Several verify keys may be accepted at once (key rotation): the
manifest names its key by ``key_id``, the first 16 hex digits of the SHA-256
of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from advisering.log import get_logger

log = get_logger(__name__)

FORMAT = "advisering-ruleset/1"
KEY_ID_HEX = 16
SIGNATURE_BYTES = 64
#: A verify-keys file larger than this, or with more keys, is refused (a few keys are normal).
MAX_KEYS_FILE_BYTES = 65_536
MAX_VERIFY_KEYS = 32
PRIVATE_KEY_NAME = "rules-signing.key"
PUBLIC_KEY_NAME = "rules-signing.pub"
SIGNING_VARIABLE = "ADVISERING_RULES_SIGNING_KEY_FILE"
VERIFY_VARIABLE = "ADVISERING_RULES_VERIFY_KEYS_FILE"

_PEM_BLOCK = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]{1,4096}?-----END PUBLIC KEY-----")


class SigningKeyError(RuntimeError):
    """A signing or verify key file that is missing, unreadable or not Ed25519 (a user error)."""


class SignatureError(ValueError):
    """A manifest whose signature does not verify; ``detail`` says why (no content)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's short fingerprint: 16 hex digits of the SHA-256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX]


def canonical_manifest(version: str, deployed: str, rules: Mapping[str, str],
                       signer_id: str) -> bytes:
    """The exact bytes a manifest's signature covers (see the module docstring)."""
    return orjson.dumps({"format": FORMAT, "key_id": signer_id, "version": version,
                         "deployed": deployed, "rules": dict(rules)},
                        option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class Signer:
    """The operators' private key and its key id; signs manifests for ``rules deploy``."""

    private_key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        """The key id of the public half, written into every manifest it signs."""
        return key_id(self.private_key.public_key())

    def sign(self, version: str, deployed: str, rules: Mapping[str, str]) -> str:
        """The base64 signature of the manifest's canonical bytes."""
        data = canonical_manifest(version, deployed, rules, self.key_id)
        return base64.b64encode(self.private_key.sign(data)).decode()

    def verify_keys(self) -> VerifyKeys:
        """Its own public key, to check what is deployed was signed by it."""
        return VerifyKeys({self.key_id: self.private_key.public_key()})


@dataclass(frozen=True)
class VerifyKeys:
    """The public keys a worker accepts, by key id (several while keys rotate)."""

    keys: Mapping[str, Ed25519PublicKey]

    def verify(self, version: str, deployed: str, rules: Mapping[str, str],
               signer_id: str, signature: str) -> None:
        """Return when one of the keys signed exactly this manifest; else SignatureError."""
        if not signature or not signer_id:
            raise SignatureError("unsigned")
        public_key = self.keys.get(signer_id)
        if public_key is None:
            raise SignatureError("unknown key id")
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("malformed signature") from None
        if len(raw) != SIGNATURE_BYTES:
            raise SignatureError("malformed signature")
        try:
            public_key.verify(raw, canonical_manifest(version, deployed, rules, signer_id))
        except InvalidSignature:
            raise SignatureError("bad signature") from None


def _read(path: Path, variable: str, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SigningKeyError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise SigningKeyError(f"{variable}: {path} is larger than {limit} bytes")
    return data


def load_signer(path: Path | None) -> Signer:
    """The private key ``rules deploy`` signs with (PEM, PKCS#8, unencrypted)."""
    if path is None:
        raise SigningKeyError(
            f"{SIGNING_VARIABLE} is not set: `rules deploy` signs the rule set with the "
            "operators' private key (make one with `advisering rules keygen --out DIR`)")
    data = _read(path, SIGNING_VARIABLE, MAX_KEYS_FILE_BYTES)
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{SIGNING_VARIABLE}: {path} is not an unencrypted PEM "
                              "private key") from None
    if not isinstance(private_key, Ed25519PrivateKey):
        raise SigningKeyError(f"{SIGNING_VARIABLE}: {path} is not an Ed25519 key")
    if os.stat(path).st_mode & 0o004:
        log.warning("rules_signing_key_world_readable", path=str(path))
    return Signer(private_key)


def parse_verify_keys(data: bytes, where: str) -> VerifyKeys:
    """Every PEM public key in ``data``; text around the blocks (comments) is ignored."""
    blocks = _PEM_BLOCK.findall(data)
    if not blocks:
        raise SigningKeyError(f"{where} holds no PEM public key")
    if len(blocks) > MAX_VERIFY_KEYS:
        raise SigningKeyError(f"{where} holds {len(blocks)} keys; at most {MAX_VERIFY_KEYS}")
    keys: dict[str, Ed25519PublicKey] = {}
    for number, block in enumerate(blocks, start=1):
        try:
            public_key = serialization.load_pem_public_key(block)
        except (ValueError, TypeError):
            raise SigningKeyError(f"{where}: key {number} is not a valid public key") from None
        if not isinstance(public_key, Ed25519PublicKey):
            raise SigningKeyError(f"{where}: key {number} is not an Ed25519 key")
        keys[key_id(public_key)] = public_key
    return VerifyKeys(keys)


def load_verify_keys(path: Path | None) -> VerifyKeys:
    """The public keys a worker accepts rule sets from; refuses to go on without any."""
    if path is None:
        raise SigningKeyError(
            f"{VERIFY_VARIABLE} is not set: a worker applies only rule sets signed by the "
            "operators, and needs their public key(s) (`advisering rules keygen` writes one)")
    data = _read(path, VERIFY_VARIABLE, MAX_KEYS_FILE_BYTES)
    return parse_verify_keys(data, f"{VERIFY_VARIABLE}: {path}")


@dataclass(frozen=True)
class KeyFiles:
    """The files :func:`write_key_pair` wrote and the pair's key id."""

    private: Path
    public: Path
    key_id: str


def write_key_pair(directory: Path) -> KeyFiles:
    """A new key pair in ``directory``: the private key 0600, the public key 0644.

    Refuses to overwrite either file: a replaced private key would silently
    orphan every worker's verify keys.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # an existing one is left as is
    private_path, public_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise SigningKeyError(f"{path} exists; not overwriting a key (move it away first)")
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private_path, private_pem, 0o600)
    _write_new(public_path, public_pem, 0o644)
    return KeyFiles(private_path, public_path, key_id(private_key.public_key()))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never through a file or link that appeared since the check above.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, mode)  # the umask may have narrowed the mode
        handle.write(data)


def dev_key_env(directory: Path) -> dict[str, str]:
    """Both settings for a throwaway key pair in ``directory`` (demo, tests, benchmarks).

    Reuses a pair already there, so several processes of one run agree.
    """
    private_path, public_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    if not private_path.exists():
        write_key_pair(directory)
    return {SIGNING_VARIABLE: str(private_path), VERIFY_VARIABLE: str(public_path)}

"""Signed rule sets: only a manifest signed by a known key, with the signed rules, is applied."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from advisering.cli.main import main
from advisering.engine.rules import RuleSet, load_rules
from advisering.events import Vocabulary
from advisering.kafka.topics import load_vocabulary
from advisering.rulebook.deploy import (
    MANIFEST_KEY,
    DeployedState,
    RulesetRejected,
    deploy_time,
    is_older,
    rule_hash,
    rule_json,
    signed_manifest,
)
from advisering.rulebook.signing import (
    MAX_VERIFY_KEYS,
    SignatureError,
    Signer,
    SigningKeyError,
    VerifyKeys,
    canonical_manifest,
    dev_key_env,
    key_id,
    load_signer,
    load_verify_keys,
    parse_verify_keys,
    write_key_pair,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = "2026-12-04T09:00:00+00:00"
VERSION = "20261204T090000Z-0a1b2c3d"


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return load_vocabulary(ROOT / "topics")


@pytest.fixture(scope="module")
def shipped(vocabulary: Vocabulary) -> RuleSet:
    return load_rules(ROOT / "rules", vocabulary)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def records(ruleset: RuleSet, manifest: dict[str, object],
            version: str = VERSION) -> list[tuple[bytes, bytes]]:
    """Rule records of ``ruleset`` and then ``manifest``, as on the topic."""
    out = [(rule.id.encode(), orjson.dumps({"version": version, "rule": rule_json(rule)}))
           for rule in ruleset.rules]
    return [*out, (MANIFEST_KEY.encode(), orjson.dumps(manifest))]


def manifest_of(ruleset: RuleSet, signer: Signer, version: str = VERSION) -> dict[str, object]:
    hashes = {rule.id: rule_hash(rule_json(rule)) for rule in ruleset.rules}
    return signed_manifest(version, DEPLOYED, hashes, signer)


def state_of(pairs: list[tuple[bytes, bytes]]) -> DeployedState:
    state = DeployedState()
    for key, value in pairs:
        state.apply(key, value)
    return state


def test_a_signed_set_verifies_and_is_applied(
    shipped: RuleSet, vocabulary: Vocabulary, signer: Signer,
) -> None:
    """The set `rules deploy` writes verifies with the signer's public key and is complete."""
    state = state_of(records(shipped, manifest_of(shipped, signer)))
    ruleset = state.verified_set(vocabulary, signer.verify_keys())
    assert ruleset is not None and ruleset.version == VERSION
    assert len(ruleset.rules) == len(shipped.rules)
    assert state.signed_by(signer)


def test_canonical_bytes_are_exactly_the_documented_json(signer: Signer) -> None:
    """What is signed: sorted-key JSON of format, key id, version, deployed time and rule hashes."""
    data = canonical_manifest("v", "t", {"b-rule": "2" * 64, "a-rule": "1" * 64}, "abcd")
    assert data == (b'{"deployed":"t","format":"advisering-ruleset/1","key_id":"abcd",'
                    b'"rules":{"a-rule":"' + b"1" * 64 + b'","b-rule":"' + b"2" * 64
                    + b'"},"version":"v"}')
    assert len(signer.key_id) == 16 and int(signer.key_id, 16) >= 0


def one_byte_changed(document: dict[str, object]) -> dict[str, object]:
    """The rule's document with one character of its message changed."""
    changed = orjson.loads(orjson.dumps(document))
    text = changed["message"]
    changed["message"] = ("X" if text[0] != "X" else "Y") + text[1:]
    return dict(changed)


def test_one_changed_byte_of_a_rule_is_refused_as_signature(
    shipped: RuleSet, vocabulary: Vocabulary, signer: Signer,
) -> None:
    """A rule whose content differs from the signed hash makes the set rejected ("signature")."""
    pairs = records(shipped, manifest_of(shipped, signer))
    rule = shipped.rules[0]
    tampered = one_byte_changed(rule_json(rule))
    pairs[0] = (rule.id.encode(), orjson.dumps({"version": VERSION, "rule": tampered}))
    with pytest.raises(RulesetRejected) as caught:
        state_of(pairs).verified_set(vocabulary, signer.verify_keys())
    assert caught.value.reason == "signature"
    assert "differ from the signed hash" in caught.value.detail


def test_a_changed_rule_of_another_version_is_a_cut_off_deploy_not_a_forgery(
    shipped: RuleSet, vocabulary: Vocabulary, signer: Signer,
) -> None:
    """A rule record of a later deploy whose manifest never came: incomplete, not signature."""
    pairs = records(shipped, manifest_of(shipped, signer))
    rule = shipped.rules[0]
    later = one_byte_changed(rule_json(rule))
    pairs.append((rule.id.encode(),
                  orjson.dumps({"version": "20261204T100000Z-0a1b2c3e", "rule": later})))
    with pytest.raises(RulesetRejected) as caught:
        state_of(pairs).verified_set(vocabulary, signer.verify_keys())
    assert (caught.value.reason, caught.value.detail) == (
        "incomplete", "1 rule(s) of another deploy")


def test_a_manifest_with_a_changed_hash_does_not_verify(
    shipped: RuleSet, vocabulary: Vocabulary, signer: Signer,
) -> None:
    """Changing the manifest's hash to fit a changed rule breaks the signature."""
    manifest = manifest_of(shipped, signer)
    rule = shipped.rules[0]
    tampered = one_byte_changed(rule_json(rule))
    manifest["rules"] = dict(manifest["rules"], **{rule.id: rule_hash(tampered)})  # type: ignore[arg-type]
    pairs = records(shipped, manifest)
    pairs[0] = (rule.id.encode(), orjson.dumps({"version": VERSION, "rule": tampered}))
    with pytest.raises(RulesetRejected) as caught:
        state_of(pairs).verified_set(vocabulary, signer.verify_keys())
    assert (caught.value.reason, caught.value.detail) == ("signature", "bad signature")


@pytest.mark.parametrize(("field", "value", "detail"), [
    ("version", "20261204T090001Z-0a1b2c3d", "bad signature"),
    ("deployed", "2026-12-05T09:00:00+00:00", "bad signature"),
    ("key_id", "0123456789abcdef", "unknown key id"),
    ("signature", "", "unsigned"),
    ("key_id", "", "unsigned"),
    ("signature", "not base64!", "malformed signature"),
    ("signature", "AAAA", "malformed signature"),
], ids=["version", "deployed", "key-id-swapped", "signature-stripped", "key-id-stripped",
        "signature-garbage", "signature-short"])
def test_a_changed_or_stripped_manifest_field_is_refused(
    shipped: RuleSet, vocabulary: Vocabulary, signer: Signer,
    field: str, value: str, detail: str,
) -> None:
    """Every signed field, the key id and the signature itself: changed, the set is refused."""
    manifest = dict(manifest_of(shipped, signer), **{field: value})
    with pytest.raises(RulesetRejected) as caught:
        state_of(records(shipped, manifest)).verified_set(vocabulary, signer.verify_keys())
    assert (caught.value.reason, caught.value.detail) == ("signature", detail)


def test_an_unsigned_manifest_of_the_old_form_is_refused(
    shipped: RuleSet, vocabulary: Vocabulary, signer: Signer,
) -> None:
    """A manifest as written before signing (no key_id, no signature) is refused."""
    manifest = {"version": VERSION, "deployed": DEPLOYED,
                "rules": {r.id: rule_hash(rule_json(r)) for r in shipped.rules}}
    state = state_of(records(shipped, manifest))
    with pytest.raises(RulesetRejected) as caught:
        state.verified_set(vocabulary, signer.verify_keys())
    assert (caught.value.reason, caught.value.detail) == ("signature", "unsigned")
    assert not state.signed_by(signer)


def test_a_signature_from_another_key_is_refused_even_under_the_right_key_id(
    shipped: RuleSet, vocabulary: Vocabulary, signer: Signer,
) -> None:
    """Another key's signature, relabelled with the trusted key id, does not verify."""
    other = Signer(Ed25519PrivateKey.generate())
    forged = manifest_of(shipped, other)
    with pytest.raises(RulesetRejected) as caught:
        state_of(records(shipped, forged)).verified_set(vocabulary, signer.verify_keys())
    assert caught.value.detail == "unknown key id"
    forged["key_id"] = signer.key_id
    with pytest.raises(RulesetRejected) as caught:
        state_of(records(shipped, forged)).verified_set(vocabulary, signer.verify_keys())
    assert caught.value.detail == "bad signature"


def test_several_verify_keys_accept_either_signer(
    shipped: RuleSet, vocabulary: Vocabulary, signer: Signer,
) -> None:
    """During a key rotation both the old and the new key's sets are accepted."""
    new = Signer(Ed25519PrivateKey.generate())
    both = VerifyKeys({**signer.verify_keys().keys, **new.verify_keys().keys})
    for who in (signer, new):
        state = state_of(records(shipped, manifest_of(shipped, who)))
        assert state.verified_set(vocabulary, both) is not None


def test_verify_raises_only_signature_errors(signer: Signer) -> None:
    """VerifyKeys.verify says why in a SignatureError, and returns for a good signature."""
    rules = {"a-rule": "1" * 64}
    signature = signer.sign("v", "t", rules)
    signer.verify_keys().verify("v", "t", rules, signer.key_id, signature)
    with pytest.raises(SignatureError, match="bad signature"):
        signer.verify_keys().verify("v", "t", {"a-rule": "2" * 64}, signer.key_id, signature)


def test_keygen_writes_a_private_key_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    """The private key is 0600 whatever the umask; a second keygen into the folder is refused."""
    old = os.umask(0o000)
    try:
        files = write_key_pair(tmp_path / "keys")
    finally:
        os.umask(old)
    assert stat.S_IMODE(files.private.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.public.stat().st_mode) == 0o644
    signer = load_signer(files.private)
    keys = load_verify_keys(files.public)
    assert signer.key_id == files.key_id and set(keys.keys) == {files.key_id}
    before = files.private.read_bytes()
    with pytest.raises(SigningKeyError, match="not overwriting"):
        write_key_pair(tmp_path / "keys")
    assert files.private.read_bytes() == before


def test_keygen_refuses_a_public_key_file_or_a_dangling_link_in_the_way(tmp_path: Path) -> None:
    """Either file existing (even as a link to nowhere) stops keygen before it writes anything."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "rules-signing.pub").write_text("keep")
    with pytest.raises(SigningKeyError):
        write_key_pair(tmp_path / "a")
    assert not (tmp_path / "a" / "rules-signing.key").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "rules-signing.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SigningKeyError):
        write_key_pair(tmp_path / "b")
    assert not (tmp_path / "elsewhere").exists()


def test_the_keys_file_may_hold_several_keys_and_comments(tmp_path: Path) -> None:
    """Concatenated public keys with comment lines between them: every key is accepted."""
    pems = []
    ids = set()
    for _ in range(3):
        private = Ed25519PrivateKey.generate()
        ids.add(key_id(private.public_key()))
        pems.append(private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    path = tmp_path / "verify.pem"
    path.write_bytes(b"# rotation 2026\n" + b"\n# old\n".join(pems))
    assert set(load_verify_keys(path).keys) == ids


def pem_of_other_kind() -> bytes:
    return generate_private_key(SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no PEM public key"),
    (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "no PEM public key"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "not a valid public key"),
    (None, "not an Ed25519 key"),
    (b"x" * 70_000, "larger than"),
], ids=["empty", "ssh-format", "garbage-pem", "ecdsa", "huge"])
def test_a_bad_keys_file_is_refused_with_the_variable_named(
    tmp_path: Path, content: bytes | None, message: str,
) -> None:
    """Empty, foreign-format, broken, non-Ed25519 or oversized files are refused, never guessed."""
    path = tmp_path / "verify.pem"
    path.write_bytes(pem_of_other_kind() if content is None else content)
    with pytest.raises(SigningKeyError, match=message) as caught:
        load_verify_keys(path)
    assert "ADVISERING_RULES_VERIFY_KEYS_FILE" in str(caught.value)


def test_too_many_verify_keys_are_refused() -> None:
    """More than MAX_VERIFY_KEYS public keys in one file are refused."""
    pem = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(SigningKeyError, match="at most"):
        parse_verify_keys(pem * (MAX_VERIFY_KEYS + 1), "here")


def test_missing_settings_are_refused_naming_the_variable(tmp_path: Path) -> None:
    """No file set, or a file that is not there: the error names the variable to set."""
    with pytest.raises(SigningKeyError, match="ADVISERING_RULES_SIGNING_KEY_FILE is not set"):
        load_signer(None)
    with pytest.raises(SigningKeyError, match="ADVISERING_RULES_VERIFY_KEYS_FILE is not set"):
        load_verify_keys(None)
    with pytest.raises(SigningKeyError, match="ADVISERING_RULES_SIGNING_KEY_FILE: cannot read"):
        load_signer(tmp_path / "absent.key")


def test_a_public_key_or_another_kind_is_no_signing_key(tmp_path: Path) -> None:
    """The signing key file must hold an Ed25519 private key, not its public half."""
    files = write_key_pair(tmp_path)
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM private key"):
        load_signer(files.public)
    ecdsa = tmp_path / "ec.key"
    ecdsa.write_bytes(generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_signer(ecdsa)


def test_dev_key_env_makes_one_pair_and_reuses_it(tmp_path: Path) -> None:
    """The demo's and tests' helper writes a pair once; a second call names the same files."""
    first = dev_key_env(tmp_path)
    assert dev_key_env(tmp_path) == first
    signer = load_signer(Path(first["ADVISERING_RULES_SIGNING_KEY_FILE"]))
    assert set(load_verify_keys(Path(first["ADVISERING_RULES_VERIFY_KEYS_FILE"])).keys) == {
        signer.key_id}


def test_versions_order_by_time_and_a_lagging_clock_still_deploys_later() -> None:
    """is_older compares deploy times; deploy_time moves past the deployed set's time."""
    assert is_older("20261204T085959Z-ffffffff", "20261204T090000Z-00000000")
    assert not is_older("20261204T090000Z-ffffffff", "20261204T090000Z-00000000")
    assert not is_older("local", VERSION) and not is_older(VERSION, "local")
    state = DeployedState()
    state.apply(MANIFEST_KEY.encode(), orjson.dumps({"version": VERSION, "rules": {}}))
    behind = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)
    assert deploy_time(state, behind) == dt.datetime(2026, 12, 4, 9, 0, 1, tzinfo=dt.UTC)
    ahead = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC)
    assert deploy_time(state, ahead) == ahead


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI against a broker nobody listens on, with the repository's rules and topics."""
    for name in ("ADVISERING_RULES_SIGNING_KEY_FILE", "ADVISERING_RULES_VERIFY_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADVISERING_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("ADVISERING_RULES_DIR", str(ROOT / "rules"))
    monkeypatch.setenv("ADVISERING_TOPICS_DIR", str(ROOT / "topics"))


@pytest.mark.usefixtures("cli_env")
def test_cli_keygen_prints_the_key_id_and_refuses_a_second_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """`rules keygen --out DIR` prints the key id; run again into DIR it exits 2, keys kept."""
    assert main(["rules", "keygen", "--out", str(tmp_path)]) == 0
    said = capsys.readouterr().out
    signer = load_signer(tmp_path / "rules-signing.key")
    assert f"Key id: {signer.key_id}" in said
    assert main(["rules", "keygen", "--out", str(tmp_path)]) == 2
    assert "not overwriting" in capsys.readouterr().err
    assert load_signer(tmp_path / "rules-signing.key").key_id == signer.key_id


@pytest.mark.usefixtures("cli_env")
def test_cli_worker_and_deploy_refuse_to_run_without_their_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the verify keys the worker exits 2, without the signing key deploy exits 2."""
    assert main(["worker"]) == 2
    assert "ADVISERING_RULES_VERIFY_KEYS_FILE is not set" in capsys.readouterr().err
    assert main(["rules", "deploy", str(ROOT / "rules")]) == 2
    assert "ADVISERING_RULES_SIGNING_KEY_FILE is not set" in capsys.readouterr().err

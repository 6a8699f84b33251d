"""The token revocation file: private, bounded, reread on change, last good list kept."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from advisering.cli.main import main
from advisering.inbox import revocation, tokens
from advisering.inbox.revocation import RevocationFileError, RevocationList

MAX_BYTES, MAX_ENTRIES = 4096, 5


def revoke(path: Path, jti: str, reason: str | None) -> bool:
    """``revocation.revoke`` with this module's small limits."""
    return revocation.revoke(path, jti, reason, max_bytes=MAX_BYTES, max_entries=MAX_ENTRIES)


def revocations_of(path: Path, clock: Callable[[], float]) -> RevocationList:
    return RevocationList(path, max_bytes=MAX_BYTES, max_entries=MAX_ENTRIES, interval=1.0,
                          clock=clock)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rejected() -> float:
    return REGISTRY.get_sample_value("advisering_token_revocation_reloads_total",
                                     {"outcome": "rejected"}) or 0.0


def test_revoke_creates_a_private_file_in_a_private_folder(tmp_path: Path) -> None:
    """The file is created 0600 in a new 0700 folder; a second revoke of one jti is a no-op."""
    path = tmp_path / "state" / "revoked.jsonl"
    assert revoke(path, "jti-1", "left the municipality")
    assert not revoke(path, "jti-1", None)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert path.read_bytes().count(b"\n") == 1 and b'"reason":"left the municipality"' in (
        path.read_bytes())


@pytest.mark.parametrize(("jti", "reason"), [
    ("", None), ("../x", None), ("a b", None), ("x" * 200, None), ("ok", "x" * 201),
    ("ok", "line\nbreak")])
def test_revoke_refuses_bad_ids_and_reasons(tmp_path: Path, jti: str, reason: str | None) -> None:
    """A jti that is no token id, or a long or multi-line reason, is refused."""
    with pytest.raises(RevocationFileError):
        revoke(tmp_path / "r.jsonl", jti, reason)
    assert not (tmp_path / "r.jsonl").exists() or (tmp_path / "r.jsonl").read_bytes() == b""


def test_revoke_refuses_to_overfill_the_file(tmp_path: Path) -> None:
    """Past max entries the file is full: revoke says so rather than write what serve refuses."""
    path = tmp_path / "r.jsonl"
    for number in range(5):
        revoke(path, f"j{number}", None)
    with pytest.raises(RevocationFileError, match="full"):
        revoke(path, "j9", None)


def test_list_rereads_a_changed_file_within_the_interval(tmp_path: Path) -> None:
    """A revocation appears after the interval; listeners are told the new ids only."""
    path, clock = tmp_path / "r.jsonl", Clock()
    revocations = revocations_of(path, clock)
    told: list[frozenset[str]] = []
    revocations.on_revoked.append(told.append)
    assert "a1" not in revocations and len(revocations) == 0
    revoke(path, "a1", None)
    assert "a1" not in revocations.refresh()  # within the interval: not checked yet
    clock.now = 1.5
    assert "a1" in revocations.refresh()
    revoke(path, "a2", None)
    clock.now = 3.0
    assert revocations.refresh() == {"a1", "a2"}
    assert told == [frozenset({"a1"}), frozenset({"a2"})]


@pytest.mark.parametrize("damage", [
    b"not json\n", b'{"jti": 5}\n', b'{"reason": "no id"}\n', b"[1]\n",
    b"".join(b'{"jti": "x%d"}\n' % i for i in range(6)),
    b'{"jti": "big", "reason": "' + b"x" * 5000 + b'"}\n'],
    ids=["not-json", "jti-not-text", "no-jti", "not-object", "too-many", "too-large"])
def test_damaged_file_keeps_the_last_good_list(tmp_path: Path, damage: bytes) -> None:
    """A malformed, overfull or oversized file leaves the last good list in force."""
    path, clock = tmp_path / "r.jsonl", Clock()
    revoke(path, "a1", None)
    revocations = revocations_of(path, clock)
    before = rejected()
    with path.open("ab") as handle:
        handle.write(damage)
    clock.now = 2.0
    assert revocations.refresh() == {"a1"}
    assert rejected() == before + 1
    path.unlink()
    clock.now = 4.0
    assert revocations.refresh() == {"a1"}  # gone: still revoked
    revoke(path, "a3", None)
    clock.now = 6.0
    assert revocations.refresh() == {"a3"}


def test_cli_issue_needs_a_department_and_revoke_writes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """token issue requires --department and prints the jti; token revoke records it."""
    monkeypatch.setenv("ADVISERING_TOKEN_SECRET", "s" * 32)
    monkeypatch.setenv("ADVISERING_INBOX_DB", str(tmp_path / "inbox" / "inbox.sqlite3"))
    with pytest.raises(SystemExit):
        main(["token", "issue", "--caseworker", "bf-0042"])
    capsys.readouterr()
    assert main(["token", "issue", "--caseworker", "bf-0042", "--department", "boern-familie",
                 "--unit", "bf-syd"]) == 0
    out, err = capsys.readouterr()
    claims = tokens.verify(b"s" * 32, out.strip())
    assert claims.department == "boern-familie" and claims.jti in err
    assert main(["token", "issue", "--caseworker", "bf-0042", "--department", "boern-familie",
                 "--hours", "13"]) == 2
    assert "43200" in capsys.readouterr().err
    assert main(["token", "revoke", claims.jti, "--reason", "test"]) == 0
    path = tmp_path / "inbox" / "token-revocations.jsonl"
    assert claims.jti in revocations_of(path, Clock())
    assert main(["token", "revoke", claims.jti]) == 0
    assert "already" in capsys.readouterr().out
    assert main(["token", "revoke", "../etc/passwd"]) == 2

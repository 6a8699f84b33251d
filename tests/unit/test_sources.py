"""The sources file: schema, rotation grace, revocation, reload without restart, the CLI verbs."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from advisering.cli.main import main
from advisering.grants import Grants
from advisering.http.sources import (
    add_source,
    load_sources,
    revoke_source,
    rotate_key,
    set_grants,
)
from advisering.http.sources_reload import ReloadingSources
from advisering.yamlfiles import YamlFileError
from tests.unit.builders import VOCABULARY

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
JOBCENTER = Grants(types=("case.*", "benefit.changed"), departments=("jobcenter", "ydelse"))
DUBU = Grants(types=("case.*",), departments=("boern-familie",))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reloads(outcome: str) -> float:
    value = REGISTRY.get_sample_value("advisering_sources_reloads_total", {"outcome": outcome})
    return value or 0.0


def test_file_is_mode_0600_and_holds_grants_but_no_key(tmp_path: Path) -> None:
    """The file keeps hashes and grants, never a key, and only its owner can read it."""
    path = tmp_path / "sources.yaml"
    key = add_source(path, "momentum", JOBCENTER)
    assert key not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_sources(path).sources["momentum"].grants == JOBCENTER
    assert not list(tmp_path.glob("*.tmp"))


def test_rotated_key_keeps_the_old_one_valid_until_the_grace_ends(tmp_path: Path) -> None:
    """After a rotation both keys work within the grace; after it only the new one does."""
    path = tmp_path / "sources.yaml"
    old = add_source(path, "momentum", JOBCENTER, now=T0)
    new = rotate_key(path, "momentum", grace=dt.timedelta(hours=24), now=T0)
    sources = ReloadingSources(path, VOCABULARY, interval=0, required=True).current()
    auth = sources.authenticator
    assert auth.source_for(new, T0) == "momentum"
    assert auth.source_for(old, T0 + dt.timedelta(hours=23, minutes=59)) == "momentum"
    assert auth.source_for(old, T0 + dt.timedelta(hours=24)) is None
    assert auth.source_for(new, T0 + dt.timedelta(days=400)) == "momentum"
    assert sources.sources.sources["momentum"].grants == JOBCENTER  # grants kept


def test_rotation_without_grace_ends_the_old_key_at_once(tmp_path: Path) -> None:
    """`--grace PT0S` (a leaked key): the old key is refused from the next request."""
    path = tmp_path / "sources.yaml"
    old = add_source(path, "momentum", JOBCENTER, now=T0)
    new = rotate_key(path, "momentum", grace=dt.timedelta(0), now=T0)
    auth = ReloadingSources(path, VOCABULARY, interval=0, required=True).current().authenticator
    assert auth.source_for(old, T0) is None
    assert auth.source_for(new, T0) == "momentum"


def test_expired_previous_keys_are_dropped_when_the_file_is_written(tmp_path: Path) -> None:
    """A write after a grace ended removes that old hash from the file."""
    path = tmp_path / "sources.yaml"
    add_source(path, "momentum", JOBCENTER, now=T0)
    rotate_key(path, "momentum", grace=dt.timedelta(hours=1), now=T0)
    assert len(load_sources(path).sources["momentum"].previous_keys) == 1
    set_grants(path, "momentum", JOBCENTER, now=T0 + dt.timedelta(hours=2))
    assert load_sources(path).sources["momentum"].previous_keys == ()


def test_revoke_removes_the_source_and_every_key_at_the_next_check(tmp_path: Path) -> None:
    """Revocation counts from the next request: current and in-grace keys both stop working."""
    path = tmp_path / "sources.yaml"
    clock = FakeClock()
    old = add_source(path, "momentum", JOBCENTER)
    new = rotate_key(path, "momentum", grace=dt.timedelta(hours=24))
    reloading = ReloadingSources(path, VOCABULARY, interval=1.0, required=True, clock=clock)
    assert reloading.current().authenticator.source_for(old) == "momentum"
    revoke_source(path, "momentum")
    clock.now += 1.0
    current = reloading.current()
    assert current.authenticator.source_for(old) is None
    assert current.authenticator.source_for(new) is None
    assert "momentum" not in current.grants
    with pytest.raises(ValueError, match="no source 'momentum'"):
        revoke_source(path, "momentum")


def test_changes_are_picked_up_within_the_interval_without_restart(tmp_path: Path) -> None:
    """New sources and new grants count after the reload interval, not before; no restart."""
    path = tmp_path / "sources.yaml"
    clock = FakeClock()
    add_source(path, "momentum", JOBCENTER)
    reloading = ReloadingSources(path, VOCABULARY, interval=2.0, required=True, clock=clock)
    before = reloads("reloaded")
    key = add_source(path, "dubu", DUBU)
    set_grants(path, "momentum", Grants(types=("case.*",), departments=("jobcenter",)))
    clock.now += 1.0
    assert reloading.current().authenticator.source_for(key) is None  # not looked yet
    clock.now += 1.0
    current = reloading.current()
    assert current.authenticator.source_for(key) == "dubu"
    assert current.sources.sources["momentum"].grants.departments == ("jobcenter",)  # type: ignore[union-attr]
    assert reloads("reloaded") == before + 1
    clock.now += 5.0
    reloading.current()  # unchanged file: no reload
    assert reloads("reloaded") == before + 1


def test_invalid_file_keeps_the_last_good_one_logs_and_counts(tmp_path: Path) -> None:
    """A broken or vanished file leaves the last good sources in force and says so."""
    path = tmp_path / "sources.yaml"
    clock = FakeClock()
    key = add_source(path, "momentum", JOBCENTER)
    reloading = ReloadingSources(path, VOCABULARY, interval=0.5, required=True, clock=clock)
    before = reloads("invalid")
    good = path.read_text()
    path.write_text(good.replace("jobcenter", "jobcentre"))  # unknown department
    clock.now += 1
    with capture_logs() as logs:
        assert reloading.current().authenticator.source_for(key) == "momentum"
    assert reloads("invalid") == before + 1
    assert [entry["event"] for entry in logs] == ["sources_file_invalid"]
    assert logs[0]["kept_sources"] == 1
    clock.now += 1
    reloading.current()  # the same broken file is not reported again
    assert reloads("invalid") == before + 1
    path.unlink()
    clock.now += 1
    assert reloading.current().authenticator.source_for(key) == "momentum"
    assert reloads("invalid") == before + 2
    path.write_text(good)
    clock.now += 1
    assert reloading.current().authenticator.source_for(key) == "momentum"


def test_worker_refuses_to_start_without_the_file_naming_the_setting(tmp_path: Path) -> None:
    """Without a sources file every event would be unknown_source: the worker says so."""
    with pytest.raises(YamlFileError, match="ADVISERING_SOURCES_FILE"):
        ReloadingSources(tmp_path / "absent.yaml", VOCABULARY, interval=1, required=True)
    serve_side = ReloadingSources(tmp_path / "absent.yaml", VOCABULARY, interval=1,
                                  required=False)
    assert serve_side.current().sources.sources == {}


def test_schema_errors_name_the_file_the_source_and_the_line(tmp_path: Path) -> None:
    """A bad grant is reported with file, line and source, like every other YAML file."""
    path = tmp_path / "sources.yaml"
    add_source(path, "momentum", JOBCENTER)
    document = yaml.safe_load(path.read_text())
    document["sources"]["momentum"]["grants"]["types"] = ["*"]
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(YamlFileError) as caught:
        load_sources(path)
    problem = caught.value.problems[0]
    assert (problem.file, problem.item) == (path, "momentum")
    assert problem.line is not None
    assert "not allowed" in str(caught.value)


def test_grants_naming_unknown_types_are_refused_at_load_with_the_source(tmp_path: Path) -> None:
    """Loaded with the vocabulary, an unknown type in a grant names the file and the source."""
    path = tmp_path / "sources.yaml"
    add_source(path, "momentum", JOBCENTER)
    path.write_text(path.read_text().replace("benefit.changed", "benefit.teleported"))
    with pytest.raises(YamlFileError) as caught:
        load_sources(path, VOCABULARY)
    problem = caught.value.problems[0]
    assert problem.item == "momentum"
    assert problem.path == "sources.momentum.grants.types[1]"
    assert "unknown event type 'benefit.teleported'" in str(problem)


def test_file_without_grants_loads_and_grants_nothing(tmp_path: Path) -> None:
    """A sources file from before grants loads; its sources are known but granted nothing."""
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  momentum:\n    key_sha256: " + "a" * 64
                    + "\n    created: '2026-01-01T00:00:00Z'\n")
    current = ReloadingSources(path, VOCABULARY, interval=0, required=True).current()
    assert "momentum" in current.grants
    assert current.sources.sources["momentum"].grants is None


def test_two_sources_sharing_a_key_are_refused(tmp_path: Path) -> None:
    """One key hash under two names would make the source ambiguous: the file is invalid."""
    path = tmp_path / "sources.yaml"
    entry = "    key_sha256: " + "b" * 64 + "\n    created: '2026-01-01T00:00:00Z'\n"
    path.write_text(f"sources:\n  momentum:\n{entry}  dubu:\n{entry}")
    with pytest.raises(YamlFileError, match="share a key"):
        load_sources(path)


def test_concurrent_changes_lose_no_update(tmp_path: Path) -> None:
    """Many `sources add` at once (a lock around read-modify-write): every source is kept."""
    path = tmp_path / "sources.yaml"
    names = [f"kilde-{n}" for n in range(12)]
    errors: list[BaseException] = []

    def add(name: str) -> None:
        try:
            add_source(path, name, DUBU)
        except BaseException as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(load_sources(path).sources) == sorted(names)


def cli(monkeypatch: pytest.MonkeyPatch, path: Path, *argv: str) -> int:
    monkeypatch.setenv("ADVISERING_SOURCES_FILE", str(path))
    monkeypatch.setenv("ADVISERING_TOPICS_DIR", str(ROOT / "topics"))
    monkeypatch.setenv("ADVISERING_LOG_FORMAT", "json")
    return main(list(argv))


def test_cli_add_list_grant_rotate_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `sources` verbs end to end: keys are printed once and never listed."""
    path = tmp_path / "sources.yaml"
    assert cli(monkeypatch, path, "sources", "add", "momentum", "--types",
               "case.*,benefit.changed", "--departments", "jobcenter,ydelse") == 0
    first_key = capsys.readouterr().out.strip().splitlines()[-1]
    assert first_key.startswith("adv_")
    assert cli(monkeypatch, path, "sources", "add", "cpr", "--types", "citizen.*") == 0
    assert cli(monkeypatch, path, "sources", "grant", "cpr", "--types",
               "citizen.moved,citizen.deceased") == 0
    assert cli(monkeypatch, path, "sources", "add", "momentum", "--rotate",
               "--grace", "PT2H") == 0
    rotated = capsys.readouterr().out
    second_key = rotated.strip().splitlines()[-1]
    assert "previous key stays valid for 2h 0m" in rotated
    assert cli(monkeypatch, path, "sources", "list") == 0
    listing = capsys.readouterr().out
    assert "cpr: types citizen.moved,citizen.deceased; departments -" in listing
    assert "momentum: types case.*,benefit.changed; departments jobcenter,ydelse" in listing
    assert "previous key valid until" in listing
    assert "key age" in listing
    entry = load_sources(path).sources["momentum"]
    for secret in (first_key, second_key, entry.key_sha256):
        assert secret not in listing
    assert cli(monkeypatch, path, "sources", "revoke", "cpr") == 0
    assert "cpr" not in load_sources(path).sources


def test_cli_refuses_bad_grants_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown types and departments, missing grants, a bare * and unknown names exit 2."""
    path = tmp_path / "sources.yaml"
    cases = [
        (("add", "momentum", "--types", "case.opend", "--departments", "jobcentre"),
         "did you mean 'case.opened'?"),
        (("add", "momentum"), "--types"),
        (("add", "momentum", "--types", "*", "--departments", "jobcenter"), "not allowed"),
        (("add", "momentum", "--types", "case.*"), "carry a case"),
        (("grant", "ghost", "--types", "citizen.*"), "no source 'ghost'"),
        (("revoke", "ghost"), "no source 'ghost'"),
        (("add", "ghost", "--rotate"), "no source 'ghost'"),
    ]
    for argv, message in cases:
        assert cli(monkeypatch, path, "sources", *argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not path.exists() or load_sources(path).sources == {}


def test_cli_list_flags_sources_without_grants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sources list` flags a source from an old file: it is granted nothing until granted."""
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  momentum:\n    key_sha256: " + "c" * 64
                    + "\n    created: '2026-01-01T00:00:00Z'\n")
    assert cli(monkeypatch, path, "sources", "list") == 0
    out = capsys.readouterr().out
    assert "momentum: NO GRANTS" in out
    assert "sources grant" in out
    assert os.access(path, os.R_OK)


def test_simulator_registers_its_sources_with_grants_and_writes_their_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`simulate --register-sources` grants every simulated system what it publishes, and its
    keys file (0600) authenticates each; an existing source gets a new key in its grace."""
    path = tmp_path / "sources.yaml"
    old = add_source(path, "momentum", JOBCENTER)
    keys_file = tmp_path / "keys.yaml"
    assert cli(monkeypatch, path, "simulate", "--register-sources", str(keys_file)) == 0
    assert "given a new key (momentum)" in capsys.readouterr().out
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    keys = yaml.safe_load(keys_file.read_text())
    current = ReloadingSources(path, VOCABULARY, interval=0, required=True).current()
    for name, key in keys.items():
        assert current.authenticator.source_for(key) == name
    assert current.authenticator.source_for(old) == "momentum"  # in its grace
    grants = current.sources.sources
    assert grants["cpr"].grants == Grants(types=("citizen.moved", "citizen.deceased"))
    assert grants["dubu"].grants == Grants(types=("case.*", "document.added"),
                                           departments=("boern-familie",))
    assert grants["momentum"].grants is not None
    assert grants["momentum"].grants.allows_type("appointment.missed")

"""The demo starts fresh at every run, in a folder of its own; tests never use the user's cache."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

import pytest

from advisering.dev.demo import demo_env
from advisering.dev.demo_state import DemoPaths, demo_paths, own_broker, start_fresh
from advisering.engine.notification import Notification
from advisering.inbox.store import InboxStore
from advisering.settings import Settings, default_cache_dir
from tests.conftest import STATE_DIR
from tests.integration.bus import bus_env
from tests.isolation import ISOLATED


def scenario_notification(run: int, number: int) -> Notification:
    """Scenario notification ``number`` as run ``run`` makes it: new key, so a new id."""
    created = dt.datetime(2026, 11, 30, 9, number, tzinfo=dt.UTC).isoformat()
    return Notification.from_json({
        "id": f"run{run}-n{number}", "rule": "sanktion-til-boernesag", "title": "Sanktion",
        "severity": "high",
        "recipient": {"caseworker": "bf-0042", "unit": "bf-syd", "department": "boern-familie"},
        "related_case": {"id": "DUBU-2025-0815", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": f"e{number}", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": created},
        "citizen": f"ps1-{run}" + "a" * 51, "message": "Borgeren i din sag DUBU-2025-0815 ...",
        "legal_basis": "Barnets lov", "created": created,
    })


def stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM notifications")]


def run_once(paths: DemoPaths, run: int) -> int:
    """A demo run's effect on its inbox: start fresh, store the scenario's notifications."""
    start_fresh(paths)
    store = InboxStore(paths.inbox_db)
    try:
        store.add_many([scenario_notification(run, n) for n in range(5)])
    finally:
        store.close()
    return len(stored_ids(paths.inbox_db))


def test_a_second_demo_run_does_not_double_the_inbox(tmp_path: Path) -> None:
    """Run two starts from an empty inbox: it holds the scenario once, under run two's ids."""
    paths = demo_paths(Settings(demo_dir=tmp_path / "demo"))
    assert run_once(paths, 1) == 5
    assert run_once(paths, 2) == 5  # not 10: run one's notifications went with its inbox
    assert sorted(stored_ids(paths.inbox_db)) == [f"run2-n{n}" for n in range(5)]


def test_start_fresh_removes_only_the_demo_state(tmp_path: Path) -> None:
    """Inbox (with its WAL), sources and worker data go; logs and foreign files stay."""
    paths = DemoPaths(tmp_path)
    for path in (paths.inbox_db, Path(f"{paths.inbox_db}-wal"), paths.sources,
                 paths.worker_data / "v1" / "tables" / "x.db", paths.log_file("worker"),
                 tmp_path / "notes.txt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left over")
    start_fresh(paths)
    assert not paths.inbox_db.exists()
    assert not Path(f"{paths.inbox_db}-wal").exists()
    assert not paths.sources.exists()
    assert not paths.worker_data.exists()
    assert paths.log_file("worker").read_text() == "left over"
    assert (tmp_path / "notes.txt").exists()
    start_fresh(DemoPaths(tmp_path / "new"))  # a folder not there yet is made
    assert (tmp_path / "new").is_dir()


def test_the_demo_children_use_a_new_key_and_the_demo_folder(tmp_path: Path) -> None:
    """Each run's worker and serve get a new pseudonym key, the demo folder's files and keys."""
    settings = Settings(demo_dir=tmp_path, bootstrap_servers="127.0.0.1:1")
    paths = demo_paths(settings)
    first = demo_env(settings, paths, b"t" * 32, {})
    second = demo_env(settings, paths, b"t" * 32, {})
    assert first["ADVISERING_PSEUDONYM_KEY"] != second["ADVISERING_PSEUDONYM_KEY"]
    assert len(bytes.fromhex(first["ADVISERING_PSEUDONYM_KEY"])) == 32
    for name in ("ADVISERING_INBOX_DB", "ADVISERING_WORKER_DATA_DIR", "ADVISERING_SOURCES_FILE"):
        assert Path(first[name]).is_relative_to(tmp_path), name
    assert own_broker(settings, paths).state_dir == tmp_path / "kafka"
    # The demo's own rule-signing pair, the same at the next run.
    assert Path(first["ADVISERING_RULES_VERIFY_KEYS_FILE"]).is_file()
    assert Path(first["ADVISERING_RULES_SIGNING_KEY_FILE"]).is_relative_to(tmp_path)
    assert second["ADVISERING_RULES_SIGNING_KEY_FILE"] == first["ADVISERING_RULES_SIGNING_KEY_FILE"]
    assert own_broker(settings, paths).libs_dir.is_relative_to(settings.kafka_cache_dir)


def _isolated_paths(settings: Settings) -> list[Path]:
    return [settings.demo_dir, settings.inbox_db, settings.worker_data_dir,
            demo_paths(settings).inbox_db, own_broker(settings, demo_paths(settings)).state_dir]


def test_tests_keep_out_of_the_users_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings in a test, and in the processes tests start, resolve into the suite's own folder."""
    user_cache = default_cache_dir()
    assert not STATE_DIR.is_relative_to(user_cache)
    for path in _isolated_paths(Settings()):
        assert path.is_relative_to(STATE_DIR), path
    child = bus_env("127.0.0.1:1")  # exactly what a process started by a test sees
    for name in [n for n in os.environ if n.startswith("ADVISERING_")]:
        monkeypatch.delenv(name)
    for name, value in child.items():
        if name.startswith("ADVISERING_"):
            monkeypatch.setenv(name, value)
    assert set(ISOLATED) <= set(child)
    for path in _isolated_paths(Settings()):
        assert path.is_relative_to(STATE_DIR), path
        assert not path.is_relative_to(user_cache), path

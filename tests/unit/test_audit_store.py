"""The SQLite audit store: once per notification id, by pseudonym and period, lookups, pruning."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from advisering.audit.store import Lookup, SqliteAuditStore, utc_text
from tests.unit.audit_support import CITIZEN, CPR, OTHER, record

CET = dt.timezone(dt.timedelta(hours=1))


def test_a_record_is_stored_once_by_its_notification_id(tmp_path: Path) -> None:
    """The same notification id twice, in one batch and in the next, is one row."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    assert store.add_many([record("n1"), record("n1"), record("n2")]) == 2
    assert store.add_many([record("n1")]) == 0
    assert [r.notification_id for r in store.disclosures([CITIZEN], None, None, 10)] == ["n1", "n2"]
    store.close()


def test_disclosures_are_by_pseudonym_and_period_oldest_first(tmp_path: Path) -> None:
    """Only the asked pseudonyms' records in [start, end), in time order across offsets."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    store.add_many([
        record("late", created="2026-11-30T00:30:00+01:00"),   # 29.11 23:30 UTC
        record("early", created="2026-11-29T08:00:00+00:00"),
        record("other", OTHER, created="2026-11-29T09:00:00+01:00"),
        record("before", created="2026-10-01T09:00:00+02:00"),
    ])
    start = dt.datetime(2026, 11, 1, tzinfo=CET)
    end = dt.datetime(2026, 12, 1, tzinfo=CET)
    found = store.disclosures([CITIZEN], start, end, 10)
    assert [r.notification_id for r in found] == ["early", "late"]
    assert [r.notification_id for r in store.disclosures([CITIZEN, OTHER], start, end, 10)] == [
        "early", "other", "late"]
    assert len(store.disclosures([CITIZEN], None, None, 2)) == 2
    assert store.disclosures([], None, None, 10) == []
    store.close()


def test_the_record_comes_back_as_it_was_stored(tmp_path: Path) -> None:
    """Every field of the audit record (the rule's title too) survives the store."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    original = record("n1")
    store.add_many([original])
    assert store.disclosures([CITIZEN], None, None, 1) == [original]
    store.close()


def test_lookups_are_recorded_and_pruning_deletes_only_the_old(tmp_path: Path) -> None:
    """prune(before) deletes disclosures and lookups older than the cut-off, nothing newer."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    store.add_many([record("old", created="2020-01-01T10:00:00+01:00"), record("new")])
    asked_old = dt.datetime(2020, 1, 2, tzinfo=dt.UTC)
    asked_new = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    store.add_lookup(Lookup("l1", asked_old, CITIZEN, "cli", caseworker="os:me"))
    store.add_lookup(Lookup("l2", asked_new, CITIZEN, "api", "ins-1", "borgerservice", None,
                            "jti-1", 1))
    assert [lk.id for lk in store.lookups([CITIZEN])] == ["l1", "l2"]
    pruned = store.prune(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    assert (pruned.disclosures, pruned.lookups) == (1, 1)
    assert [r.notification_id for r in store.disclosures([CITIZEN], None, None, 10)] == ["new"]
    [kept] = store.lookups([CITIZEN])
    assert (kept.id, kept.asked, kept.jti, kept.disclosures) == ("l2", asked_new, "jti-1", 1)
    store.close()


def test_the_file_is_private_and_holds_no_cpr_number(tmp_path: Path) -> None:
    """The database is 0600 and, after records and a lookup, contains no CPR number."""
    path = tmp_path / "sub" / "audit.sqlite3"
    store = SqliteAuditStore(path)
    store.add_many([record("n1")])
    store.add_lookup(Lookup("l1", dt.datetime.now(dt.UTC), CITIZEN, "cli"))
    store.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for file in path.parent.iterdir():
        data = file.read_bytes()
        assert CPR.encode() not in data and b"010180-1234" not in data


def test_store_times_sort_as_text_in_time_order() -> None:
    """utc_text is fixed-width UTC, so text order is time order; naive times are refused."""
    moments = [dt.datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=dt.UTC),
               dt.datetime(2026, 1, 1, 0, 30, tzinfo=CET), dt.datetime(2025, 12, 31, tzinfo=CET)]
    texts = [utc_text(m) for m in moments]
    assert sorted(texts) == [utc_text(m) for m in sorted(moments)]
    with pytest.raises(ValueError, match="offset"):
        utc_text(dt.datetime(2026, 1, 1))

"""The audit store, SQLite and PostgreSQL alike: once per id, by pseudonym and period, pruning."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from advisering.audit.postgres import AUDIT_MIGRATIONS, PostgresAuditStore
from advisering.audit.store import Lookup, SqliteAuditStore, utc_text
from advisering.settings import Settings
from tests.pg import open_audit, open_store, text_in_tables
from tests.unit.audit_support import CITIZEN, CPR, OTHER, record

CET = dt.timezone(dt.timedelta(hours=1))


def test_a_record_is_stored_once_by_its_notification_id(audit_db: Path | str) -> None:
    """The same notification id twice, in one batch and in the next, is one row."""
    store = open_audit(audit_db)
    assert store.add_many([record("n1"), record("n1"), record("n2")]) == 2
    assert store.add_many([record("n1")]) == 0
    assert [r.notification_id for r in store.disclosures([CITIZEN], None, None, 10)] == ["n1", "n2"]
    store.close()


def test_disclosures_are_by_pseudonym_and_period_oldest_first(audit_db: Path | str) -> None:
    """Only the asked pseudonyms' records in [start, end), in time order across offsets."""
    store = open_audit(audit_db)
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


def test_the_record_comes_back_as_it_was_stored(audit_db: Path | str) -> None:
    """Every field of the audit record (the rule's title too) survives the store."""
    store = open_audit(audit_db)
    original = record("n1")
    store.add_many([original])
    assert store.disclosures([CITIZEN], None, None, 1) == [original]
    store.close()


def test_lookups_are_recorded_and_pruning_deletes_only_the_old(audit_db: Path | str) -> None:
    """prune(before) deletes disclosures and lookups older than the cut-off, nothing newer."""
    store = open_audit(audit_db)
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


def test_the_postgresql_tables_hold_no_cpr_number(pg_url: str) -> None:
    """After records and a lookup, no text column of the audit tables holds the CPR number."""
    store = open_audit(pg_url)
    store.add_many([record("n1"), record("n2", OTHER)])
    store.add_lookup(Lookup("l1", dt.datetime.now(dt.UTC), CITIZEN, "api", "ins-1"))
    store.close()
    text = text_in_tables(pg_url, ("audit_disclosures", "audit_lookups"))
    assert CITIZEN in text and "DUBU-2025-0815" in text  # the scan reads the rows
    assert CPR not in text and "010180-1234" not in text


async def test_the_audit_tables_share_the_inbox_database_with_their_own_versions(
        pg_url: str) -> None:
    """Inbox and audit migrate one database independently; reopening has nothing to do."""
    inbox = await open_store(pg_url)
    await inbox.close()
    first = PostgresAuditStore(pg_url)
    assert (first.migrated.before, first.migrated.after) == (0, len(AUDIT_MIGRATIONS))
    first.close()
    again = PostgresAuditStore(pg_url)
    assert again.migrated.before == again.migrated.after == len(AUDIT_MIGRATIONS)
    again.close()
    inbox = await open_store(pg_url)  # the inbox's versions are untouched by the audit's
    await inbox.close()


def test_the_audit_database_follows_the_inbox_unless_set(tmp_path: Path) -> None:
    """Unset: beside a SQLite inbox, or the PostgreSQL inbox's database; a URL is a secret."""
    url = "postgresql://audit:hemmelig@db.example:5432/advis"
    beside = Settings(inbox_db=tmp_path / "inbox.sqlite3")
    assert beside.audit_database(beside.inbox_db) == tmp_path / "audit.sqlite3"
    shared = Settings(inbox_db=url)
    location = shared.audit_database(shared.inbox_db)
    assert isinstance(location, SecretStr) and location.get_secret_value() == url
    own = Settings(inbox_db=tmp_path / "inbox.sqlite3", audit_db=url.replace("advis", "audit"))
    assert isinstance(own.audit_db, SecretStr)
    assert "hemmelig" not in repr(own) and "hemmelig" not in str(own.audit_db)
    assert Settings(audit_db="  ").audit_db is None

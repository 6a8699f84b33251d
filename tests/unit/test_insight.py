"""advisering insight: the CPR number checked and pseudonymised at the edge, the log, the letter."""

from __future__ import annotations

import datetime as dt
import html.parser
import io
import os
import stat
from pathlib import Path

import orjson
import pytest

from advisering.audit.store import AuditStorage, SqliteAuditStore
from advisering.cli.main import main
from advisering.insight.letter import render_letter
from advisering.insight.report import (
    Asker,
    InsightReport,
    InsightRequestError,
    Period,
    cpr_digits_of,
    look_up,
    parse_day,
    pseudonyms_of,
)
from advisering.pseudonyms import pseudonymise
from tests.pg import open_audit, text_in_tables
from tests.unit.audit_support import CITIZEN, CPR, KEY, OLD_KEY, OTHER, record


@pytest.mark.parametrize("value", ["0101801234", "010180-1234", " 010180-1234\n"])
def test_a_cpr_number_is_accepted_in_both_written_forms(value: str) -> None:
    """Ten digits, or DDMMYY-XXXX, surrounding blanks ignored."""
    assert cpr_digits_of(value) == CPR


@pytest.mark.parametrize("value", [
    "", "010180123", "01018012345", "010180 1234", "010180--1234", "0101-801234",
    "０１０１８０１２３４", "٠١٠١٨٠١٢٣٤", "01018o1234", "3201801234", "0113801234",
    "0101801234; DROP TABLE", "1" * 10_000, "ps1-" + "a" * 52,
])
def test_anything_else_is_a_clear_error_that_never_repeats_the_value(value: str) -> None:
    """Wrong length, separators, other digits, no real date: refused, the value not echoed."""
    with pytest.raises(InsightRequestError) as caught:
        cpr_digits_of(value)
    message = str(caught.value)
    assert "DDMMYY" in message
    assert not any(ch.isdigit() for ch in message.replace("DDMMYY", ""))


def test_pseudonyms_cover_a_key_rotation() -> None:
    """The current key's pseudonym first, then the previous key's; the same key once."""
    assert pseudonyms_of(CPR, KEY) == (CITIZEN,)
    assert pseudonyms_of(CPR, KEY, OLD_KEY) == (CITIZEN, pseudonymise(CPR, OLD_KEY))
    assert pseudonyms_of(CPR, KEY, KEY) == (CITIZEN,)


def test_a_period_is_municipal_days_inclusive() -> None:
    """--from/--to are Danish calendar days, both included; to before from is refused."""
    start, end = Period(dt.date(2026, 11, 29), dt.date(2026, 11, 29)).bounds()
    assert start is not None and end is not None
    assert start.astimezone(dt.UTC) == dt.datetime(2026, 11, 28, 23, tzinfo=dt.UTC)
    assert end - start == dt.timedelta(days=1)
    with pytest.raises(InsightRequestError, match="before"):
        Period(dt.date(2026, 12, 1), dt.date(2026, 11, 1))
    for bad in ("2026-13-01", "29.11.2026", "2026-1-1", "x" * 50):
        with pytest.raises(InsightRequestError, match="YYYY-MM-DD"):
            parse_day(bad, "from")


def _report(audit_db: Path | str, *, limit: int = 100) -> tuple[InsightReport, AuditStorage]:
    store = open_audit(audit_db)
    old_name = pseudonymise(CPR, OLD_KEY)
    store.add_many([record("n1"), record("n2", created="2026-11-30T10:00:00+01:00",
                                         trigger_department=None),
                    record("rotated", old_name, created="2026-01-05T10:00:00+01:00"),
                    record("not-them", OTHER)])
    report, _ = look_up(store, pseudonyms_of(CPR, KEY, OLD_KEY), Period(), Asker("cli"),
                        limit=limit)
    return report, store


def test_the_log_lists_every_disclosure_under_old_and_new_pseudonyms(
        audit_db: Path | str) -> None:
    """Every record of the person (either key), none of another, with all the asked facts."""
    report, store = _report(audit_db)
    assert [d.notification_id for d in report.disclosures] == ["rotated", "n1", "n2"]
    one = report.disclosures[1]
    assert (one.rule, one.rule_title, one.legal_basis) == (
        "sanktion-til-boernesag", record("n1").title, record("n1").legal_basis)
    assert (one.trigger.type, one.trigger.department, one.trigger.time) == (
        "benefit.changed", "jobcenter", "2026-11-29T09:12:00+01:00")
    assert (one.told.department, one.told.unit, one.case.id) == (
        "boern-familie", "bf-syd", "DUBU-2025-0815")
    [lookup] = store.lookups([CITIZEN])
    assert (lookup.via, lookup.disclosures) == ("cli", 3)
    store.close()


def test_a_log_longer_than_the_limit_says_it_was_cut(audit_db: Path | str) -> None:
    """At most the limit, oldest first, and truncated set."""
    report, store = _report(audit_db, limit=2)
    assert (report.count, report.truncated) == (2, True)
    store.close()


class _Outline(html.parser.HTMLParser):
    """The letter's tags, headings, table header scopes and anything loaded from outside."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.scopes: list[str | None] = []
        self.lang: str | None = None
        self.external: list[str] = []
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "html":
            self.lang = found.get("lang")
        if tag == "th":
            self.scopes.append(found.get("scope"))
        if any(name in found for name in ("src", "href")) or any(
                name.startswith("on") for name in found):
            self.external.append(tag)
        self._in_heading = tag in ("h1", "h2")

    def handle_data(self, data: str) -> None:
        if self._in_heading and data.strip():
            self.headings.append(data.strip())
            self._in_heading = False


def test_the_letter_is_plain_accessible_danish_html(tmp_path: Path) -> None:
    """lang=da, h1 and h2s, a captioned table with scoped headers, print CSS, nothing external."""
    report, store = _report(tmp_path / "audit.sqlite3")
    store.close()
    letter = render_letter(report, "Testkommune")
    outline = _Outline()
    outline.feed(letter)
    assert outline.lang == "da"
    assert outline.headings[0] == "Indsigt i advis om dig"
    assert "Hvad advis ikke er" in outline.headings
    assert "caption" in outline.tags and "script" not in outline.tags
    assert outline.scopes and all(s in ("col", "row") for s in outline.scopes)
    assert outline.scopes.count("row") == 3
    assert outline.external == [] and "@import" not in letter and "url(" not in letter
    assert "@media print" in letter and "aldrig en afgørelse" in letter
    assert "29.11.2026 kl. 09.12" in letter and "registeret momentum" in letter


def test_the_letter_escapes_every_value(tmp_path: Path) -> None:
    """A hostile message or title cannot add markup to the letter."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    store.add_many([record("n1", title="<script>alert(1)</script>",
                           message="<img src=x onerror=alert(1)>")])
    report, _ = look_up(store, [CITIZEN], Period(), Asker("cli"), limit=5)
    store.close()
    letter = render_letter(report)
    assert "<script>alert" not in letter and "<img" not in letter
    assert "&lt;script&gt;" in letter


def test_an_empty_log_says_nothing_was_disclosed(tmp_path: Path) -> None:
    """No disclosures: the letter says so instead of an empty table."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    report, _ = look_up(store, [CITIZEN], Period(), Asker("cli"), limit=5)
    store.close()
    assert "<table>" not in render_letter(report)
    assert "ikke sendt noget advis" in render_letter(report)


def _env(monkeypatch: pytest.MonkeyPatch, db: Path | str) -> None:
    for name in list(os.environ):
        if name.startswith("ADVISERING_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ADVISERING_PSEUDONYM_KEY", KEY.decode())
    monkeypatch.setenv("ADVISERING_AUDIT_DB", str(db))
    monkeypatch.setenv("ADVISERING_LOG_FORMAT", "json")


def test_the_command_writes_json_or_a_private_letter_and_no_cpr_anywhere(
    tmp_path: Path, audit_db: Path | str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """insight --cpr: JSON on stdout, --out a 0600 letter; the CPR in no output, log or row."""
    db = audit_db
    store = open_audit(db)
    store.add_many([record("n1"), record("n2", created="2026-12-02T10:00:00+01:00")])
    store.close()
    _env(monkeypatch, db)
    assert main(["insight", "--cpr", "010180-1234", "--to", "2026-11-30"]) == 0
    out, err = capsys.readouterr()
    assert [d["notification_id"] for d in orjson.loads(out)["disclosures"]] == ["n1"]
    monkeypatch.setattr("sys.stdin", io.StringIO(CPR + "\n"))
    letter = tmp_path / "brev.html"
    assert main(["insight", "--cpr", "-", "--format", "html", "--out", str(letter)]) == 0
    out2, err2 = capsys.readouterr()
    assert out2 == "" and stat.S_IMODE(os.stat(letter).st_mode) == 0o600
    assert "insight_lookup" in err + err2
    rows = (text_in_tables(db, ("audit_disclosures", "audit_lookups"))
            if isinstance(db, str) else "")
    assert isinstance(db, Path) or "os:" in rows  # the PostgreSQL scan reads the lookup row
    for text in (out, err, err2, rows, letter.read_text(), *(
            f.read_bytes().decode("latin-1") for f in tmp_path.iterdir() if f.is_file())):
        assert CPR not in text and "010180-1234" not in text


def test_the_command_refuses_a_bad_number_or_a_missing_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A malformed CPR or date is exit 2 with the reason; no store is not silently empty."""
    _env(monkeypatch, tmp_path / "missing.sqlite3")
    assert main(["insight", "--cpr", "3201801234"]) == 2
    assert "birth date" in capsys.readouterr().err
    assert main(["insight", "--cpr", CPR, "--from", "01-12-2026"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert main(["insight", "--cpr", CPR]) == 2
    err = capsys.readouterr().err
    assert "no audit store" in err and CPR not in err
    assert not (tmp_path / "missing.sqlite3").exists()

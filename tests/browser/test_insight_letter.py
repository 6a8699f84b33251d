"""The citizen's insight letter (`advisering insight --format html`) in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from advisering.audit.store import SqliteAuditStore
from advisering.engine.notification import AuditRecord, Recipient, RelatedCase, Trigger
from advisering.insight.letter import render_letter
from advisering.insight.report import Asker, Period, look_up
from tests.browser.test_inbox_page import ARGS, CHROMIUM, OUTPUT
from tests.unit.audit_support import CITIZEN


def _record(nid: str, created: str, rule: str, title: str, basis: str, message: str,
            told: tuple[str | None, str, str], case: tuple[str, str, str],
            trigger: tuple[str, str, str | None]) -> AuditRecord:
    return AuditRecord(
        notification_id=nid, citizen=CITIZEN, recipient=Recipient(*told), rule=rule,
        legal_basis=basis, disclosed=message, related_case=RelatedCase(*case),
        trigger=Trigger(f"ev-{nid}", trigger[1], trigger[0], trigger[2], created),
        created=created, title=title)


RECORDS = [
    _record("n1", "2026-03-02T08:10:00+01:00", "ny-boernesag-orientering",
            "Ny børnesag hos en borger med andre åbne sager",
            "Barnets lov § 133 (koordinering af indsatsen)",
            "Borgeren i din sag DUBU-2025-0815 har også en sag i jobcentret.",
            ("bf-0042", "bf-syd", "boern-familie"), ("DUBU-2025-0815", "dubu", "34.15.00"),
            ("case.opened", "dubu", "boern-familie")),
    _record("n2", "2026-06-15T13:45:00+02:00", "sanktion-til-boernesag",
            "Sanktion i jobcentret for en forælder med en åben børnesag",
            "Barnets lov (underretning og tidlig indsats)",
            "Borgeren i din sag DUBU-2025-0815 har fået en sanktion i jobcentret (15.06.2026).",
            ("bf-0042", "bf-syd", "boern-familie"), ("DUBU-2025-0815", "dubu", "34.15.00"),
            ("benefit.changed", "momentum", "jobcenter")),
    _record("n3", "2026-09-01T09:00:00+02:00", "flytning-til-alle",
            "Borgeren er flyttet", "Forvaltningsloven § 7 (vejledning)",
            "Borgeren i din sag SKOLE-2026-0042 er flyttet (01.09.2026).",
            (None, "pps", "skole"), ("SKOLE-2026-0042", "elevsag", "17.07.00"),
            ("citizen.moved", "cpr", None)),
]


def test_the_letter_renders_with_its_headings_and_one_row_per_disclosure(tmp_path: Path) -> None:
    """Chromium shows the h1, the sections, a captioned table with three rows; nothing loaded."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    store.add_many(RECORDS)
    report, _ = look_up(store, [CITIZEN], Period(), Asker("cli"), limit=100)
    store.close()
    letter = tmp_path / "letter.html"
    letter.write_text(render_letter(report, "Eksempel Kommune"), encoding="utf-8")
    OUTPUT.mkdir(exist_ok=True)
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("request", lambda request: requested.append(request.url))
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text)
                if message.type == "error" else None)
        page.goto(letter.as_uri())
        expect(page.locator("html")).to_have_attribute("lang", "da")
        expect(page.get_by_role("heading", level=1)).to_have_text("Indsigt i advis om dig")
        expect(page.get_by_role("heading", level=2)).to_have_text(
            ["Hvad er advis?", "Hvad advis ikke er", "Advis om dig", "Dine rettigheder"])
        table = page.get_by_role("table")
        expect(table.locator("caption")).to_contain_text("(3 i alt)")
        expect(page.get_by_role("columnheader")).to_have_count(7)
        rows = table.locator("tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(1).get_by_role("rowheader")).to_have_text("15.06.2026 kl. 13.45")
        expect(rows.nth(1)).to_contain_text("Sanktion i jobcentret for en forælder")
        expect(rows.nth(1)).to_contain_text("hos jobcentret")
        expect(rows.nth(2)).to_contain_text("registeret cpr")
        expect(rows.nth(2)).to_contain_text("Skoleområdet, enhed pps")
        page.screenshot(path=str(OUTPUT / "insight-letter.png"), full_page=True)
        page.emulate_media(media="print")
        assert page.evaluate("getComputedStyle(document.body).maxWidth") == "none"
        pdf = page.pdf(format="A4")
        browser.close()
    assert requested == [letter.as_uri()] and errors == []
    assert (OUTPUT / "insight-letter.png").stat().st_size > 10_000 and len(pdf) > 10_000

"""The demo's last scene: each scenario citizen's insight, from the audit store audit-sink fills.

After the scenario the demo waits until ``advisering audit-sink`` has stored
the scenario's disclosures, prints how many each citizen would see with
``advisering insight``, and writes the first citizen's Danish letter to the
demo folder under a name without the CPR number.
"""

from __future__ import annotations

import time
from pathlib import Path

from advisering.audit.store import SqliteAuditStore
from advisering.insight.letter import render_letter
from advisering.insight.report import Asker, Period, look_up, pseudonyms_of

LETTER_NAME = "indsigt-borger-1.html"


def _stored(location: Path, pseudonyms: list[str]) -> int:
    if not location.is_file():
        return 0
    store = SqliteAuditStore(location)
    try:
        return len(store.disclosures(pseudonyms, None, None, 10_000))
    finally:
        store.close()


def show_insight(location: Path, cprs: list[str], key: bytes, expected: int, folder: Path,
                 timeout: float = 30.0) -> Path | None:
    """Print each citizen's number of disclosures; the first one's letter, or None if none came."""
    names = {cpr: pseudonyms_of(cpr.replace("-", ""), key) for cpr in cprs}
    everyone = [p for found in names.values() for p in found]
    deadline = time.monotonic() + timeout
    while _stored(location, everyone) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    if not location.is_file():
        print("Borgernes indsigt: audit-sink har ikke gemt noget endnu.")
        return None
    store = SqliteAuditStore(location)
    letter: Path | None = None
    print("\n== Borgernes indsigt (advisering insight --cpr ...; audit-sink gemmer auditloggen)")
    try:
        for number, cpr in enumerate(cprs, start=1):
            report, _ = look_up(store, names[cpr], Period(), Asker("cli", caseworker="demo"),
                                limit=10_000)
            rules = ", ".join(sorted({d.rule for d in report.disclosures}))
            print(f"Borger {number}: {report.count} advis ({rules})")
            if letter is None:
                letter = folder / LETTER_NAME
                letter.write_text(render_letter(report, "Demokommunen"), encoding="utf-8")
                letter.chmod(0o600)
    finally:
        store.close()
    if letter is not None:
        print(f"Brevet til borger 1: {letter}")
    return letter

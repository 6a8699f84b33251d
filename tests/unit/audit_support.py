"""Audit records for the audit store, sink, insight and API tests."""

from __future__ import annotations

from advisering.engine.notification import AuditRecord, Recipient, RelatedCase, Trigger
from advisering.pseudonyms import pseudonymise

KEY = b"k" * 32
OLD_KEY = b"o" * 32
CPR = "0101801234"
"""A synthetic CPR number (a real date, form only); the tests look for it everywhere."""
CITIZEN = pseudonymise(CPR, KEY)
OTHER = pseudonymise("0202902345", KEY)


def record(nid: str, citizen: str = CITIZEN, created: str = "2026-11-29T09:12:01+01:00", *,
           title: str | None = "Sanktion i jobcentret for en forælder med en åben børnesag",
           message: str = "Borgeren i din sag DUBU-2025-0815 har fået en sanktion i "
                          "jobcentret (29.11.2026).",
           trigger_department: str | None = "jobcenter") -> AuditRecord:
    """One audit record as the worker writes it (a sanction told to the children's caseworker)."""
    return AuditRecord(
        notification_id=nid, citizen=citizen,
        recipient=Recipient("bf-0042", "bf-syd", "boern-familie"),
        rule="sanktion-til-boernesag", legal_basis="Barnets lov (underretning og tidlig indsats)",
        disclosed=message, related_case=RelatedCase("DUBU-2025-0815", "dubu", "34.15.00"),
        trigger=Trigger(f"ev-{nid}", "momentum", "benefit.changed", trigger_department,
                        "2026-11-29T09:12:00+01:00"),
        created=created, title=title)

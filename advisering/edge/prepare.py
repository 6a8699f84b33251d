"""The publishing edge: turn a source system's event into one fit for the bus.

Shared by the Python publisher, ``advisering publish`` and the HTTP ingest.
Each party given as ``{"cpr": ...}`` becomes ``{"citizen": <pseudonym>}``;
any other CPR-shaped value is refused with its field path, since it would
otherwise reach a topic.
"""

from __future__ import annotations

import copy
from typing import Any

from advisering.events import CaseEvent, Rejection, RejectReason, Vocabulary, validate_event
from advisering.privacy import cpr_digits, pseudonym_of_digits


def prepare_event(
    raw: Any, key: bytes, vocabulary: Vocabulary, *, owned: bool = False
) -> CaseEvent | Rejection:
    """Pseudonymise the parties of ``raw`` and validate it; never raises on bad input.

    ``raw`` is copied first, as it is the caller's; with ``owned`` (a value the
    caller has just parsed and will not use again, as a replay does a million
    times) it is changed in place instead.
    """
    if not isinstance(raw, dict):
        return Rejection(RejectReason.NOT_AN_OBJECT, "", "an event must be a JSON object")
    event = raw if owned else copy.deepcopy(raw)
    data = event.get("data")
    parties = data.get("parties") if isinstance(data, dict) else None
    if isinstance(parties, list):
        for index, party in enumerate(parties):
            if not isinstance(party, dict) or "cpr" not in party:
                continue
            cpr = party.pop("cpr")
            digits = cpr_digits(cpr) if isinstance(cpr, str) else None
            if digits is None:
                return Rejection(RejectReason.INVALID_FIELD, f"data.parties[{index}].cpr",
                                 "not a valid CPR number (ten digits, a valid date)")
            if "citizen" in party:
                return Rejection(RejectReason.INVALID_FIELD, f"data.parties[{index}]",
                                 "give either cpr or citizen, not both")
            party["citizen"] = pseudonym_of_digits(digits, key)
    return validate_event(event, vocabulary)

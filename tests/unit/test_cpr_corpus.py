"""The CPR corpus: each disguised CPR number is refused everywhere, each realistic value passes."""

from __future__ import annotations

import orjson
import pytest

from advisering.events import CaseEvent, Rejection, RejectReason, decode_event, validate_event
from advisering.privacy import (
    REDACTED,
    cpr_paths,
    find_cprs,
    json_may_hold_cpr,
    redact,
    redact_value,
)
from advisering.worker.steps import intake
from tests.unit.builders import CREATED, DEMO_GRANTS, VOCABULARY
from tests.unit.cpr_corpus import PASSED, POSITIONS, REFUSED, Entry, event_bytes

# The disguises issue 10 names, each of which must be in the corpus.
ISSUE_DISGUISES = [
    b'"010190 1234"', b'"01 01 90 1234"', b'"01.01.90-1234"', b'"010190\\u20131234"',
    b'"010190\\u20111234"', b'"0101\\u200b901234"', b'"id0101901234"',
    b'"0101901234abc"', b'"cpr%3D0101901234"', b"2101901234.0", b"2.101901234e9", b"101901234",
]


def _expected_path(entry: Entry, position: str) -> str | None:
    if position == "key":
        return None if entry.is_string else "data.k"
    return position


def test_corpus_has_forty_of_each_and_every_disguise_of_the_issue() -> None:
    """The corpus holds 40+ disguised CPR numbers, 40+ realistic values and the issue's list."""
    assert len(REFUSED) >= 40
    assert len(PASSED) >= 40
    literals = {entry.literal for entry in REFUSED}
    for disguise in ISSUE_DISGUISES:
        assert orjson.dumps(orjson.loads(disguise)) in {orjson.dumps(orjson.loads(x))
                                                         for x in literals}, disguise
    notes = " ".join(entry.note for entry in REFUSED)
    for word in ("full-width", "Arabic-Indic", "en dash", "U+2011", "zero-width space"):
        assert word in notes


@pytest.mark.parametrize("entry", REFUSED, ids=str)
def test_refused_value_is_a_cpr_number_on_its_own(entry: Entry) -> None:
    """Each disguise is found on its own (string or number) and redaction removes it."""
    value = entry.decoded
    assert list(cpr_paths(value)) == [""]
    assert redact_value(value) == REDACTED or not list(cpr_paths(redact_value(value)))
    if isinstance(value, str):
        assert find_cprs(value)
        assert find_cprs(redact(value)) == []
        assert REDACTED in redact(value)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("entry", REFUSED, ids=str)
def test_refused_value_is_caught_anywhere_in_an_event(entry: Entry, position: str) -> None:
    """In id, subject, a data extension or a key, each disguise is cpr_detected."""
    payload = event_bytes(entry, position)
    assert json_may_hold_cpr(payload)
    result = decode_event(payload, VOCABULARY)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.CPR_DETECTED
    expected = _expected_path(entry, position)
    if expected is not None:
        assert result.path == expected
    assert not find_cprs(result.path + result.message + repr(result.problems))


@pytest.mark.parametrize("position", ("subject", "data.note", "key"))
@pytest.mark.parametrize("entry", REFUSED, ids=str)
def test_worker_dead_letters_every_disguise_redacted(entry: Entry, position: str) -> None:
    """steps.intake dead-letters each disguise (cpr_detected); the letter holds it in no form."""
    payload = event_bytes(entry, position)
    outbox = intake(payload, VOCABULARY, grants=DEMO_GRANTS, topic="advisering.case-events",
                    partition=0, offset=7, now=CREATED)
    assert outbox.citizen_events == []
    [(_key, value)] = outbox.dead_letters
    letter = orjson.loads(value)
    assert letter["reason"] == "cpr_detected"
    assert letter["event_id"] == "corpus-1"
    text = value.decode()
    assert find_cprs(text) == []
    assert list(cpr_paths(letter)) == []
    assert list(cpr_paths(orjson.loads(letter["payload"]))) == []
    assert REDACTED in letter["payload"]
    for form in entry.forms():
        assert form not in text


@pytest.mark.parametrize("entry", PASSED, ids=str)
def test_realistic_value_is_no_cpr_number(entry: Entry) -> None:
    """UUIDs, hex ids, case ids, KLE, times, epoch ms, phone, CVR, amounts, dates: no CPR."""
    value = entry.decoded
    assert list(cpr_paths(value)) == []
    assert redact_value(value) == value
    if isinstance(value, str):
        assert find_cprs(value) == []
        assert redact(value) == value


@pytest.mark.parametrize("position", ("subject", "data.note", "key"))
@pytest.mark.parametrize("entry", PASSED, ids=str)
def test_realistic_value_passes_in_an_event(entry: Entry, position: str) -> None:
    """An event holding a realistic value anywhere is not refused as holding a CPR number."""
    payload = event_bytes(entry, position)
    assert list(cpr_paths(orjson.loads(payload))) == []
    result = validate_event(orjson.loads(payload), VOCABULARY)
    assert not (isinstance(result, Rejection) and result.reason is RejectReason.CPR_DETECTED)
    if position == "data.note" and not isinstance(result, Rejection):
        assert isinstance(decode_event(payload, VOCABULARY), CaseEvent)


def test_typical_events_skip_the_walk() -> None:
    """The raw-bytes pre-check clears an event of UUID id, ISO time, case id, KLE and pseudonym."""
    for entry in PASSED:
        if entry.note in ("Momentum case id (nine digits)", "KLE code", "ISO time with offset",
                          "W3C trace id", "SHA-256 (64 hex)", "8-digit phone number",
                          "CVR number", "date", "amount"):
            assert not json_may_hold_cpr(event_bytes(entry, "data.note")), entry.note


def test_events_with_random_uuid_ids_skip_the_walk() -> None:
    """With the exempt UUID, no event differing only in a random UUID id needs the walk."""
    import uuid  # noqa: PLC0415

    from tests.unit.cpr_corpus import base_event  # noqa: PLC0415

    payloads = [orjson.dumps(base_event(str(uuid.uuid4()))) for _ in range(2000)]
    assert not any(json_may_hold_cpr(payload) for payload in payloads)
    assert json_may_hold_cpr(orjson.dumps(base_event("0101901234-aaaa")))


def test_uuids_of_digits_and_e_skip_the_walk() -> None:
    """A UUID id made only of digits and e's (a number's shape) needs no walk; found by chance."""
    from tests.unit.cpr_corpus import base_event  # noqa: PLC0415

    for event_id in ("67133279-6904-4347-9e26-73994664e780",
                     "39702190-9719-4301-8505-53105e098415"):
        assert not json_may_hold_cpr(orjson.dumps(base_event(event_id)))
        assert json_may_hold_cpr(orjson.dumps(base_event(event_id[:-1])))  # not a UUID: looked at


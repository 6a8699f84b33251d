"""CPR detection, keyed pseudonyms, redaction and the paths of CPR numbers in JSON."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from advisering.privacy import (
    REDACTED,
    cpr_paths,
    find_cprs,
    is_cpr,
    is_pseudonym,
    json_may_hold_cpr,
    may_hold_cpr,
    normalise_cpr,
    number_is_cpr,
    pseudonymise,
    redact,
    redact_value,
)
from tests.unit.builders import KEY


def synthetic_cprs(count: int) -> list[str]:
    """``count`` distinct CPR numbers with valid dates across the 20th century."""
    start = dt.date(1901, 1, 1)
    out = []
    for index in range(count):
        born = start + dt.timedelta(days=index * 17)
        seventh = index % 4  # 0-3: born in the 1900s
        out.append(f"{born:%d%m%y}{seventh}{index % 1000:03d}")
    return out


def test_cpr_without_hyphen_is_found() -> None:
    """Ten digits with a valid date are a CPR number."""
    assert find_cprs("0101700001") == ["0101700001"]
    assert is_cpr("0101700001")


def test_cpr_with_hyphen_is_found() -> None:
    """A hyphen after the sixth digit is accepted and kept in the match."""
    assert find_cprs("010170-0001") == ["010170-0001"]
    assert is_cpr("010170-0001")


@pytest.mark.parametrize(
    "digits",
    [
        "3102801234",  # 31 February
        "0113801234",  # month 13
        "0000801234",  # day 0
        "0100801234",  # month 0
        "3204801234",  # day 32
        "3104801234",  # 31 April
        "2902001234",  # 29 February 1900 (seventh digit 1: 1900s, not a leap year)
    ],
)
def test_invalid_dates_are_not_cprs(digits: str) -> None:
    """Ten digits whose first six are not a real birth date are not a CPR number."""
    assert find_cprs(digits) == []
    assert find_cprs(f"{digits[:6]}-{digits[6:]}") == []
    assert not is_cpr(digits)


def test_century_from_seventh_digit_decides_leap_day() -> None:
    """29.02.00 is valid with a seventh digit meaning 2000 (4) but not 1900 (1)."""
    assert is_cpr("2902004234")
    assert not is_cpr("2902001234")


@pytest.mark.parametrize(
    "text",
    ["01017000011", "10101700001", "0101700001234", "123456789012345", "010170-00012"],
)
def test_longer_digit_runs_are_not_matched(text: str) -> None:
    """A CPR-shaped run inside a longer run of digits is not a CPR number."""
    assert find_cprs(text) == []
    assert redact(text) == text


def test_cpr_inside_free_text_is_found() -> None:
    """CPR numbers embedded in prose, with and without hyphen, are all found."""
    text = "Borgeren (cpr 010170-0001) ringede om barnet 0202800002, sag 34.15.00."
    assert find_cprs(text) == ["010170-0001", "0202800002"]


def test_cpr_next_to_letters_and_punctuation_is_found() -> None:
    """Letters or punctuation around the ten digits do not hide a CPR number."""
    assert find_cprs("cpr:0101700001;") == ["0101700001"]
    assert find_cprs("x0101700001y") == ["0101700001"]


def test_is_cpr_needs_exactly_one_number() -> None:
    """is_cpr is true for one CPR number (surrounding blanks allowed), not for text."""
    assert is_cpr("  0101700001 ")
    assert not is_cpr("cpr 0101700001")
    assert not is_cpr("0101700001 0202800002")


def test_pseudonym_is_deterministic() -> None:
    """The same CPR number and key give the same pseudonym every time."""
    assert pseudonymise("0101700001", KEY) == pseudonymise("0101700001", KEY)


def test_pseudonym_ignores_hyphen() -> None:
    """A CPR number with and without hyphen has one pseudonym."""
    assert pseudonymise("010170-0001", KEY) == pseudonymise("0101700001", KEY)


def test_pseudonym_depends_on_key() -> None:
    """A different municipality key gives a different pseudonym."""
    assert pseudonymise("0101700001", KEY) != pseudonymise("0101700001", b"x" * 32)


def test_pseudonym_differs_per_citizen() -> None:
    """Two CPR numbers give two pseudonyms."""
    assert pseudonymise("0101700001", KEY) != pseudonymise("0101700002", KEY)


def test_pseudonym_has_the_documented_shape() -> None:
    """A pseudonym is ps1- followed by 52 lower-case base32 characters."""
    pseudonym = pseudonymise("0101700001", KEY)
    assert pseudonym.startswith("ps1-")
    assert len(pseudonym) == 56
    assert is_pseudonym(pseudonym)
    assert "0101700001" not in pseudonym


@pytest.mark.parametrize("value", ["3102801234", "12345", "not a cpr", "01017000011"])
def test_pseudonymise_refuses_non_cprs(value: str) -> None:
    """Only a CPR number can be pseudonymised."""
    with pytest.raises(ValueError, match="not a CPR number"):
        pseudonymise(value, KEY)


def test_pseudonyms_never_look_like_cprs() -> None:
    """Over 2000 synthetic CPR numbers no pseudonym contains a CPR number."""
    cprs = synthetic_cprs(2000)
    assert all(is_cpr(c) for c in cprs)
    pseudonyms = {pseudonymise(c, KEY) for c in cprs}
    assert len(pseudonyms) == len(set(cprs)) == 2000
    for pseudonym in pseudonyms:
        assert is_pseudonym(pseudonym)
        assert find_cprs(pseudonym) == []
        assert find_cprs(f"borger {pseudonym} 12") == []
        assert redact(pseudonym) == pseudonym
        assert list(cpr_paths({"citizen": pseudonym})) == []


def test_redact_replaces_every_cpr_and_keeps_the_rest() -> None:
    """Every CPR number becomes the marker; all other text is unchanged."""
    text = "A: 010170-0001, B: 0202800002, sag 34.15.00, tlf 12345678, dato 3102801234."
    assert redact(text) == (
        f"A: {REDACTED}, B: {REDACTED}, sag 34.15.00, tlf 12345678, dato 3102801234."
    )
    assert find_cprs(redact(text)) == []


def test_redact_without_cpr_is_identity() -> None:
    """Text without a CPR number comes back unchanged."""
    text = "Sag MOM-2026-00123 (KLE 32.24.06) ændret 29.11.2026 kl. 09:12."
    assert redact(text) == text


def test_cpr_paths_gives_dotted_paths() -> None:
    """Nested mappings and lists give paths like data.case.title and data.parties[0].note."""
    value = {
        "id": "ev-1",
        "data": {
            "case": {"id": "C-1", "title": "Sag om 010170-0001"},
            "parties": [{"citizen": "ps1-x", "note": "cpr 0202800002"}],
        },
    }
    assert sorted(cpr_paths(value)) == ["data.case.title", "data.parties[0].note"]


def test_cpr_paths_finds_lists_keys_and_numbers() -> None:
    """List items, mapping keys (redacted in the path) and integers holding a CPR are reported."""
    value = {"a": ["x", "0101700001"], "1501700001": "v", "n": 1501700001, "flag": True}
    assert sorted(cpr_paths(value)) == sorted(["a[1]", "[CPR-REDACTED]", "n"])
    assert list(cpr_paths(["ok", ["0101700001"]])) == ["[1][0]"]


def test_cpr_paths_is_empty_for_clean_values() -> None:
    """A value without CPR numbers (dates, case ids, invalid dates) gives no path."""
    clean = {"time": "2026-11-29T09:12:00+01:00", "case": {"id": "MOM-2026-00123"},
             "n": 3102801234, "kle": "32.24.06"}
    assert list(cpr_paths(clean)) == []


def test_hex_ids_and_uuids_are_not_cpr_numbers() -> None:
    """UUIDs and hex digests whose digits look like a date are not taken for CPR numbers."""
    assert find_cprs("ab010180-1234-4e7b-9a51-0d2f7c9e1a10") == []
    assert find_cprs("4f0b2c1e-8d1a-4e7b-9a51-0101801234ab") == []
    assert find_cprs("0101801234abcdef0123456789abcdef") == []
    assert find_cprs("cpr0101801234") == ["0101801234"]


@pytest.mark.parametrize(
    "value",
    [{"note": "\b0101700001"}, {"note": "\f010170-0001"}, {"x": ["\u00010101700001"]},
     {"0101700001": 1}, {"n": 1501700001}, ["0101700001"]],
)
def test_quick_check_never_hides_a_cpr_number(value: object) -> None:
    """The cheap pre-check of cpr_paths passes every value that holds a CPR, even after escapes."""
    assert may_hold_cpr(value)
    assert list(cpr_paths(value)) != []


def test_quick_check_spares_values_without_ten_digits() -> None:
    """A typical event (times, UUIDs, KLE, pseudonyms) has no run of ten digits: no walk needed."""
    clean = {"id": "4f0b2c1e-8d1a-4e7b-9a51-0d2f7c9e1a10", "time": "2026-11-29T09:12:00+01:00",
             "data": {"case": {"id": "MOM-2026-00123", "kle": "32.24.06"},
                      "parties": [{"citizen": pseudonymise("0101700001", KEY)}]}}
    assert not may_hold_cpr(clean)
    assert may_hold_cpr({"not json": object()})  # cannot tell: walk it


@pytest.mark.parametrize("value", [
    {"note": "ring 010190-1234"}, {"note": "0101901234"}, {"0101901234": 1}, {"n": 101901234},
    {"deep": [{"x": "a0101901234b"}]}, {"n": 3112991234},
])
def test_json_may_hold_cpr_never_misses_a_cpr(value: object) -> None:
    """Whenever the decoded value holds a CPR number, the raw-bytes pre-check says it may."""
    payload = orjson.dumps(value)
    if list(cpr_paths(value)):
        assert json_may_hold_cpr(payload)


def test_json_may_hold_cpr_is_false_for_pseudonymised_events() -> None:
    """An ordinary pseudonymised event (dates, ids, pseudonyms) needs no CPR walk."""
    payload = orjson.dumps({"id": "ab12-34cd", "time": "2026-11-02T08:50:00+01:00",
                            "citizen": pseudonymise("0101901234", KEY), "kle": "32.24.06"})
    assert not json_may_hold_cpr(payload)
    assert json_may_hold_cpr(payload.replace(b"ab12", b"\\u0030"))


def test_cpr_paths_and_redact_value_walk_any_depth() -> None:
    """A value nested 5000 deep is walked and redacted without RecursionError."""
    deep: object = "cpr 010190 1234"
    for _ in range(5000):
        deep = {"x": [deep]}
    paths = list(cpr_paths(deep))
    assert len(paths) == 1 and paths[0].startswith("x[0].x[0]")
    redacted = redact_value(deep)
    assert list(cpr_paths(redacted)) == []
    inner = redacted
    for _ in range(5000):
        inner = inner["x"][0]  # type: ignore[index]
    assert inner == f"cpr {REDACTED}"


def test_dead_letter_of_a_1000_deep_payload_is_redacted() -> None:
    """A payload deeper than orjson writes is dead-lettered as redacted text, without raising."""
    from advisering.events import Rejection, RejectReason  # noqa: PLC0415
    from advisering.kafka.deadletters import dead_letter  # noqa: PLC0415

    payload = b'{"source":"momentum","id":"deep","a":' + b"[" * 1000 + b'"0101\\u200b901234"' \
        + b"]" * 1000 + b"}"
    key, value = dead_letter(Rejection(RejectReason.TOO_DEEP, "a", "too deep"), payload,
                             topic="t", partition=0, offset=1, received="2026-11-29T00:00:00Z")
    record = orjson.loads(value)
    assert key == b"momentum"
    assert record["event_id"] == "deep"
    assert find_cprs(record["payload"]) == []
    assert REDACTED in record["payload"]


def test_truncated_dead_letter_payload_is_redacted_again() -> None:
    """Cutting a long payload cannot leave ten digits of a longer run as a CPR number."""
    from advisering.events import Rejection, RejectReason  # noqa: PLC0415
    from advisering.kafka.deadletters import MAX_PAYLOAD_CHARS, dead_letter  # noqa: PLC0415

    text = "x" * (MAX_PAYLOAD_CHARS - 10) + "01019012345"  # 11 digits: no CPR until cut
    assert find_cprs(text) == []
    _, value = dead_letter(Rejection(RejectReason.NOT_JSON, "", "not JSON"), text.encode(),
                           topic="t", partition=0, offset=1, received="2026-11-29T00:00:00Z")
    record = orjson.loads(value)
    assert record["payload_truncated"] is True
    assert find_cprs(record["payload"]) == []
    assert record["payload"].endswith(REDACTED)


@pytest.mark.parametrize("written", [
    "010190 1234", "01 01 90 1234", "01.01.90-1234", "010190\u20131234", " 0101901234 ",
    "\uff10\uff11\uff10\uff11\uff19\uff10\uff11\uff12\uff13\uff14",
    "\u0660\u0661\u0660\u0661\u0669\u0660\u0661\u0662\u0663\u0664",
])
def test_party_cpr_in_any_form_has_the_same_pseudonym(written: str) -> None:
    """A party's CPR with blanks, dots, dashes or Unicode digits has the ten digits' pseudonym."""
    from advisering.edge.prepare import prepare_event  # noqa: PLC0415
    from advisering.events import CaseEvent  # noqa: PLC0415
    from tests.unit.builders import VOCABULARY, case, event_dict  # noqa: PLC0415

    assert is_cpr(written)
    assert normalise_cpr(written) == "0101901234"
    assert pseudonymise(written, KEY) == pseudonymise("0101901234", KEY)
    raw = event_dict("case.opened", case("MOM-1", "jobcenter", kle="32.24.06"))
    raw["data"]["parties"] = [{"cpr": written, "role": "primaer"}]
    event = prepare_event(raw, KEY, VOCABULARY)
    assert isinstance(event, CaseEvent)
    assert event.data.parties[0].citizen == pseudonymise("0101901234", KEY)


@pytest.mark.parametrize("value", [
    "4f0b2c1e-8d1a-4e7b-9a51-0101801234ab", "0101901234abcdef", "0101901234abcdef0123456789abcdef",
    "507f1f77bcf86c0101901234", "da39a3ee5e6b4b0d3255bfef0101901234d80709",
])
def test_exempt_tokens_hide_cpr_shaped_digits(value: str) -> None:
    """UUIDs and 16/24/32/40/64-hex tokens are exempt despite CPR-shaped digits (residual risk)."""
    assert find_cprs(value) == []
    assert find_cprs(value + "g")  # no longer a hex token: the digits are found


def test_numbers_count_by_value() -> None:
    """Ten-digit ints, nine-digit ints (lost 0), integral and other floats count; bool does not."""
    assert number_is_cpr(2101901234) and number_is_cpr(101901234) and number_is_cpr(-101901234)
    assert number_is_cpr(2101901234.0) and number_is_cpr(2.101901234e9)
    assert number_is_cpr(101901234.5)
    assert not number_is_cpr(True) and not number_is_cpr(1764403920000)
    assert not number_is_cpr(float("inf")) and not number_is_cpr(3102801234)
    assert find_cprs("2.101901234e9") == ["2.101901234e9"]
    assert find_cprs("1e9") == []


def test_text_encoded_beyond_the_round_limit_counts_as_a_cpr() -> None:
    """A value that still decodes after the last round is refused and redacted whole."""
    layered = "%" + "25" * 10 + "30"
    assert find_cprs(layered) == [layered]
    assert redact(layered) == REDACTED
    assert find_cprs("%2520") == []  # double encoding of a blank: decoded, nothing found


def test_log_processor_redacts_every_value() -> None:
    """The structlog processor redacts CPR numbers in strings, numbers, containers and keys."""
    from advisering.log import redact_cprs  # noqa: PLC0415

    event = {"event": "x", "note": "ring 010190 1234", "n": 101901234, "ok": 12,
             "nested": {"k": ["0101\u200b901234"]}, "0101901234": 1, "flag": True}
    out = redact_cprs(None, "info", dict(event))
    assert out["note"] == f"ring {REDACTED}"
    assert out["n"] == REDACTED
    assert out["ok"] == 12 and out["flag"] is True
    assert out["nested"] == {"k": [REDACTED]}
    assert REDACTED in out and "0101901234" not in out
    assert not find_cprs(orjson.dumps(out).decode())


def test_standard_library_records_are_redacted() -> None:
    """The handler filter redacts a CPR number in a record's message, arguments and traceback."""
    import logging  # noqa: PLC0415

    from advisering.log import CprRedactingFilter  # noqa: PLC0415

    try:
        raise ValueError("bad cpr 01.01.90-1234")
    except ValueError:
        import sys  # noqa: PLC0415
        exc_info = sys.exc_info()
    record = logging.LogRecord("faust", logging.ERROR, __file__, 1, "payload %s", ("0101901234",),
                               exc_info)
    assert CprRedactingFilter().filter(record)
    line = logging.Formatter().format(record)
    assert find_cprs(line) == []
    assert REDACTED in line


def test_text_with_very_many_cpr_numbers_is_redacted_whole() -> None:
    """Past MAX_HITS CPR numbers in one text, redaction replaces the whole text (bounded work)."""
    from advisering.privacy import MAX_HITS  # noqa: PLC0415

    many = "01.01.90 1234; " * (MAX_HITS + 1)
    assert redact(many) == REDACTED
    few = "01.01.90 1234; " * 3
    assert redact(few) == f"{REDACTED}; " * 3

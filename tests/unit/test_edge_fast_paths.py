"""The edge's cheap ways give the plain recipe's results: pseudonyms, the CPR check, encoding."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisering import cpr_text
from advisering.edge.prepare import prepare_event
from advisering.events import CaseEvent, encode_event
from advisering.privacy import cpr_paths, json_may_hold_cpr, pseudonymise
from advisering.pseudonyms import _base32
from tests.unit.builders import CITIZEN_A, KEY, VOCABULARY, case, event_dict
from tests.unit.test_cpr_properties import cpr_numbers


def plain_pseudonym(digits: str, key: bytes) -> str:
    """The recipe as the design states it: HMAC-SHA256, base32, lower case, no padding."""
    digest = hmac.new(key, digits.encode("ascii"), hashlib.sha256).digest()
    return "ps1-" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


@given(st.binary(min_size=32, max_size=32))
def test_table_base32_is_rfc4648_base32(digest: bytes) -> None:
    """The table-driven base32 of a digest is the standard library's, lower case, unpadded."""
    assert _base32(digest) == base64.b32encode(digest).decode("ascii").rstrip("=").lower()


@given(cpr_numbers(), st.binary(min_size=1, max_size=200),
       st.sampled_from(["{}", "{}-{}", "{} {}", "{}.{}"]))
def test_pseudonym_is_the_plain_recipe_for_any_key_and_form(
        digits: str, key: bytes, form: str) -> None:
    """Any key (shorter or longer than a hash block), any written form: the recipe's value."""
    written = form.format(digits[:6], digits[6:]) if form != "{}" else digits
    assert pseudonymise(written, key) == plain_pseudonym(digits, key)


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_ten_ascii_digits_are_judged_as_the_general_path_judges_them(digits: str) -> None:
    """The short cut for ten ASCII digits agrees with the general path (the same text padded)."""
    assert cpr_text.single_cpr(digits) == cpr_text.single_cpr(f" {digits} ")


def test_a_time_with_a_fraction_of_a_second_needs_no_walk() -> None:
    """Digits after a colon in a string (an ISO time) are no number: the pre-check clears them."""
    payload = orjson.dumps({"time": "2026-10-01T07:32:56.846539+01:00", "citizen": CITIZEN_A,
                            "id": "79293066-9667-5853-bf42-e4a55c817fdf"})
    assert not json_may_hold_cpr(payload)


def test_numbers_beside_strings_that_look_like_numbers_are_still_seen() -> None:
    """A CPR-shaped number after strings holding colons and digits is still a may-hold."""
    for value in ({"t": "07:32:56.846539", "n": 101901234},
                  {"t": "a:b:c", "list": ["x:1", 2.101901234e9]},
                  ["07:32:56.846539", 3112991234], {"k:": 1, "n": -101901234.5}):
        assert list(cpr_paths(value))
        assert json_may_hold_cpr(orjson.dumps(value))
        assert json_may_hold_cpr(orjson.dumps(value, option=orjson.OPT_INDENT_2))


_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                  st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
_VALUE = st.recursive(_LEAF, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=8)
_TIMES = st.sampled_from(["2026-10-01T07:32:56.846539+01:00", "2026-10-01T07:32:56Z",
                          "2026-10-01T07:32:56.100+00:00", "2026-10-01 07:32:56.1234567-02:30",
                          "2026-10-01T07:32:56+14:00"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_VALUE, st.text(max_size=40), _TIMES)
def test_encode_event_writes_the_bytes_of_the_dict_route(
        extension: Any, subject: str, time: str) -> None:
    """pydantic's own JSON equals orjson over model_dump, for any JSON an event can carry."""
    raw = event_dict("case.opened", case("DUBU-1", "boern-familie", kle="34.15.00"))
    raw.update(subject=subject, time=time)
    raw["data"]["note"] = extension
    event = CaseEvent.model_validate(orjson.loads(orjson.dumps(raw)))
    assert encode_event(event) == orjson.dumps(event.model_dump(mode="json", exclude_none=True))


def test_prepared_event_in_place_is_the_prepared_copy() -> None:
    """Preparing the caller's parsed value in place gives the same record as preparing a copy."""
    raw = event_dict("case.opened", case("DUBU-1", "boern-familie", kle="34.15.00"))
    raw["data"]["parties"] = [{"cpr": "010170-0001", "role": "primaer"}]
    copied = prepare_event(raw, KEY, VOCABULARY)
    owned = prepare_event(orjson.loads(orjson.dumps(raw)), KEY, VOCABULARY, owned=True)
    assert isinstance(copied, CaseEvent) and isinstance(owned, CaseEvent)
    assert encode_event(copied) == encode_event(owned)
    assert copied.key == plain_pseudonym("0101700001", KEY)

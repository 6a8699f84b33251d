"""Caseworker tokens: audience, issuer, lifetime, leeway, jti and department, forged by hand too."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson
import pytest

from advisering.inbox import tokens
from advisering.inbox.tokens import TokenError, TokenPolicy
from advisering.settings import Settings

SECRET = b"s" * 32
NOW = 1_800_000_000


def claims(**changes: Any) -> dict[str, object]:
    """Valid claims at NOW; ``changes`` replace fields (None removes one)."""
    base: dict[str, object] = {"iss": "advisering", "aud": "advisering-inbox", "sub": "bf-0042",
                               "dept": "boern-familie", "unit": "bf-syd", "iat": NOW,
                               "nbf": NOW, "exp": NOW + 3600, "jti": "a" * 32}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def forged(payload: dict[str, object], secret: bytes = SECRET,
           header: dict[str, str] | None = None) -> str:
    """A token signed with ``secret`` by hand, whatever its claims say."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    signing = (b64(orjson.dumps(header or {"alg": "HS256", "typ": "JWT"})) + "."
               + b64(orjson.dumps(payload)))
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


DEFAULT = TokenPolicy()


def refused(token: str, reason: str, policy: TokenPolicy = DEFAULT) -> None:
    with pytest.raises(TokenError) as caught:
        tokens.verify(SECRET, token, policy=policy, now=NOW + 10)
    assert caught.value.reason == reason


def test_issued_token_carries_every_claim_and_verifies() -> None:
    """An issued token has iss, aud, sub, dept, unit, iat, nbf, exp and a random jti."""
    first = tokens.issue(SECRET, "bf-0042", "boern-familie", "bf-syd", now=NOW)
    second = tokens.issue(SECRET, "bf-0042", "boern-familie", "bf-syd", now=NOW)
    one = tokens.verify(SECRET, first, now=NOW + 1)
    assert (one.caseworker, one.department, one.unit) == ("bf-0042", "boern-familie", "bf-syd")
    assert one.expires == NOW + 8 * 3600 and one.issued == NOW
    assert one.jti != tokens.verify(SECRET, second, now=NOW + 1).jti
    assert len(one.jti) == 32


def test_hand_forged_valid_token_verifies() -> None:
    """The forging helper makes tokens verify does accept (so the refusals below mean something)."""
    assert tokens.verify(SECRET, forged(claims()), now=NOW + 10).caseworker == "bf-0042"
    assert tokens.verify(SECRET, forged(claims(aud=["other", "advisering-inbox"])),
                         now=NOW + 10).department == "boern-familie"


@pytest.mark.parametrize("aud", ["other-service", ["other-service"], None, 5, ""])
def test_foreign_or_missing_audience_is_refused(aud: object) -> None:
    """A token for another audience (or none) is refused, though signed with our secret."""
    refused(forged(claims(aud=aud)), "audience")


@pytest.mark.parametrize("iss", ["evil-idp", "Advisering", None, 1])
def test_foreign_or_missing_issuer_is_refused(iss: object) -> None:
    """A token from another issuer (or none) is refused."""
    refused(forged(claims(iss=iss)), "issuer")


def test_configured_audience_and_issuer_are_the_ones_required() -> None:
    """With another audience and issuer configured, the default ones are foreign."""
    policy = TokenPolicy(audience="kommune-inbox", issuer="https://idp.kommune.example")
    refused(forged(claims()), "audience", policy)
    token = forged(claims(aud="kommune-inbox", iss="https://idp.kommune.example"))
    assert tokens.verify(SECRET, token, policy=policy, now=NOW + 10).jti == "a" * 32


def test_future_nbf_or_iat_beyond_leeway_is_refused_within_it_accepted() -> None:
    """nbf or iat in the future beyond the leeway is 401; within the leeway it passes."""
    refused(forged(claims(nbf=NOW + 10 + 61)), "not_yet_valid")
    refused(forged(claims(iat=NOW + 10 + 61, nbf=None)), "not_yet_valid")
    assert tokens.verify(SECRET, forged(claims(nbf=NOW + 10 + 59, iat=NOW + 10 + 59)),
                         now=NOW + 10)
    refused(forged(claims(nbf=NOW + 15)), "not_yet_valid", TokenPolicy(leeway=0))


def test_lifetime_above_maximum_is_refused_at_issue() -> None:
    """token issue refuses a lifetime above the maximum (and zero or less)."""
    for lifetime in (43_201, 0, -5):
        with pytest.raises(TokenError):
            tokens.issue(SECRET, "bf-0042", "boern-familie", lifetime=lifetime)
    assert tokens.issue(SECRET, "bf-0042", "boern-familie", lifetime=43_200)
    with pytest.raises(TokenError):
        tokens.issue(SECRET, "bf-0042", "boern-familie", lifetime=3601,
                     policy=TokenPolicy(max_lifetime=3600))


def test_hand_forged_long_lived_token_is_refused_at_verify() -> None:
    """A token signed with the right secret but living longer than allowed is refused."""
    refused(forged(claims(exp=NOW + 43_201)), "lifetime")
    refused(forged(claims(iat=NOW - 400 * 86_400, exp=NOW + 3600)), "lifetime")
    refused(forged(claims(exp=NOW + 3601)), "lifetime", TokenPolicy(max_lifetime=3600))
    refused(forged(claims(exp=NOW, iat=NOW)), "lifetime")  # exp not after iat


@pytest.mark.parametrize(("field", "value"), [
    ("iat", None), ("exp", None), ("iat", "1800000000"), ("exp", True), ("exp", 1.8e9),
    ("nbf", "soon"), ("exp", 2**60)])
def test_missing_or_mistyped_times_are_refused(field: str, value: object) -> None:
    """iat and exp are required whole numbers; nbf, when there, too (a bool is no time)."""
    with pytest.raises(TokenError):
        tokens.verify(SECRET, forged(claims(**{field: value})), now=NOW + 10)


@pytest.mark.parametrize(("field", "value"), [
    ("jti", None), ("jti", ""), ("jti", "x" * 200), ("jti", "../etc"), ("jti", 7),
    ("dept", None), ("dept", "Børn"), ("sub", None), ("sub", "BF 0042"), ("unit", 5),
    ("unit", "x" * 70)])
def test_missing_or_invalid_identity_claims_are_refused(field: str, value: object) -> None:
    """sub, dept and jti are required and checked; a unit, when there, is checked too."""
    refused(forged(claims(**{field: value})), "claims")


def test_expired_forged_and_malformed_tokens_are_refused() -> None:
    """An expired, a wrongly signed, an alg-none and an oversized token are refused."""
    refused(forged(claims(iat=NOW - 7200, nbf=NOW - 7200, exp=NOW)), "expired")
    refused(forged(claims(), secret=b"x" * 32), "signature")
    refused(forged(claims(), header={"alg": "none", "typ": "JWT"}), "signature")
    refused("a." + "b" * 5000 + ".c", "malformed")
    refused(forged([1, 2]), "malformed")  # type: ignore[arg-type]
    refused("", "missing")


def test_issue_refuses_invalid_ids() -> None:
    """A caseworker, department, unit or jti that is no plain id cannot be put in a token."""
    for args in (("BF 42", "boern-familie"), ("bf-0042", ""), ("bf-0042", "Børn")):
        with pytest.raises(TokenError):
            tokens.issue(SECRET, *args)
    with pytest.raises(TokenError):
        tokens.issue(SECRET, "bf-0042", "boern-familie", "x/../y")
    with pytest.raises(TokenError):
        tokens.issue(SECRET, "bf-0042", "boern-familie", jti="-no")


def test_policy_defaults_equal_the_settings_defaults() -> None:
    """TokenPolicy() and the ADVISERING_TOKEN_* defaults agree (the tests rely on it)."""
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    assert TokenPolicy.from_settings(settings) == TokenPolicy()

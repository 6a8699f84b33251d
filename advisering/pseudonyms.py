"""Keyed pseudonyms of CPR numbers: what the edge writes instead of a CPR number.

A pseudonym is ``ps1-`` followed by the lower-case base32 of the
HMAC-SHA256 of the number's ten digits, keyed with the municipality's secret
(``ADVISERING_PSEUDONYM_KEY``). The base32 alphabet has no 0, 1, 8 or 9, so a
pseudonym can never itself look like a CPR number (a CPR month always
starts with 0 or 1).

Every event a source sends with CPR parties pays for this once per party,
so it is made cheaply (a keyed HMAC copied, base32 from a table) with the
same result as the plain recipe (a test holds them equal).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

from advisering.cpr_text import single_cpr

PSEUDONYM_PREFIX = "ps1-"
# The whole format: the prefix and 52 characters of base32 (256 bits).
PSEUDONYM_PATTERN = rf"^{PSEUDONYM_PREFIX}[a-z2-7]{{52}}$"
_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)


def pseudonymise(cpr: str, key: bytes) -> str:
    """The municipality-wide pseudonym of a CPR number (HMAC-SHA256 with ``key``).

    The same CPR number gives the same pseudonym in every source system that
    shares the key; without the key it cannot be reversed or recomputed.
    """
    digits = single_cpr(cpr)
    if digits is None:
        raise ValueError("not a CPR number")
    return pseudonym_of_digits(digits, key)


def cpr_digits(value: str) -> str | None:
    """The ten ASCII digits when ``value`` is exactly one CPR number, else None.

    The check of ``privacy.is_cpr``, for a caller that checks a value and then
    pseudonymises it: one check, not two.
    """
    return single_cpr(value)


def pseudonym_of_digits(digits: str, key: bytes) -> str:
    """The pseudonym of a CPR number's ten ASCII digits (from :func:`cpr_digits`)."""
    mac = _keyed(key).copy()  # the key's HMAC pads are hashed once per key, not per number
    mac.update(digits.encode("ascii"))
    return PSEUDONYM_PREFIX + _base32(mac.digest())


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 with ``key`` and no message yet, to be copied for each number."""
    return hmac.new(key, digestmod=hashlib.sha256)


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648's alphabet, lower case
_BASE32_PAIRS = tuple(first + second for first in _BASE32 for second in _BASE32)


def _base32(digest: bytes) -> str:
    """RFC 4648 base32 of a 32-byte digest, lower case and unpadded (52 characters).

    As ``base64.b32encode(digest).decode().rstrip("=").lower()`` (a test holds
    them equal), in a third of its time: ten bits at a time, from a table of
    the 1024 pairs of letters. 256 bits with four zero bits appended are
    exactly 52 letters, which is where the padded encoding ends.
    """
    number = int.from_bytes(digest, "big") << 4
    return "".join([_BASE32_PAIRS[(number >> shift) & 1023] for shift in range(250, -1, -10)])


def is_pseudonym(value: str) -> bool:
    """The value has the form :func:`pseudonymise` gives (``ps1-`` and 52 base32 letters)."""
    return bool(_PSEUDONYM.match(value))

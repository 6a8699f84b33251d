"""Looks for CPR-shaped values in an exported image filesystem, with the package's detector.

Two readings, because the detector is built for event payloads, where a
false alarm costs a dead letter, not for a Linux filesystem:

* :func:`plain_findings`, over every file: a CPR number as data holds it,
  ``ddmmyyssss``, ``ddmmyy-ssss``, ``ddmmyy ssss`` or ``dd.mm.yy-ssss``, standing
  alone (not inside a hex digest, a version or a dotted or slashed number),
  that :func:`advisering.privacy.is_cpr` accepts (valid date and century).
* :func:`detector_findings`, over the project's own files (package, rules,
  topics): :func:`advisering.privacy.find_cprs`, every disguise it knows.
  Over the whole filesystem it also flags IP addresses, ASN.1 object ids and
  version strings in system libraries (hundreds; none is data).

Running the detector over every character would take hours in pure Python, so a
cheap test first keeps the pieces that *could* hold ten digits in a shape it
knows: a line with ten ASCII digits, or with a percent, HTML or JSON escape or a
non-ASCII byte (Unicode digits). A piece with none of these holds fewer than ten
digits in any reading. Binary files are read as their printable ASCII runs.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from advisering.privacy import find_cprs, is_cpr

_PLAIN = re.compile(
    rb"(?<![0-9A-Za-z._/-])[0-9]{2}\.?[0-9]{2}\.?[0-9]{2}[- ]?[0-9]{4}(?![0-9A-Za-z])"
)
_DIGIT = re.compile(rb"[0-9]")
_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}|&#|\\u|[\x80-\xff]")
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\t]{10,}")
_TEXT_SAMPLE = 8192


@dataclass(frozen=True)
class Finding:
    """A CPR-shaped value in one file of the image (path inside the image, the value)."""

    path: str
    value: str


def plain_findings(path: str, data: bytes) -> Iterator[Finding]:
    """CPR numbers written as data writes them, anywhere in one file."""
    for match in _PLAIN.finditer(data):
        value = match.group().decode("ascii")
        if is_cpr(value):
            yield Finding(path, value)


def _pieces(data: bytes) -> Iterator[bytes]:
    if b"\0" in data[:_TEXT_SAMPLE]:
        yield from (match.group() for match in _PRINTABLE_RUN.finditer(data))
    else:
        yield from data.splitlines()


def _may_hold_ten_digits(piece: bytes) -> bool:
    return len(_DIGIT.findall(piece)) >= 10 or _ESCAPE.search(piece) is not None


def detector_findings(path: str, data: bytes) -> Iterator[Finding]:
    """Every CPR number in any disguise the package's detector knows, in one file."""
    for piece in _pieces(data):
        if _may_hold_ten_digits(piece):
            for value in find_cprs(piece.decode("utf-8", errors="replace")):
                yield Finding(path, value)


Reader = Callable[[str, bytes], Iterator[Finding]]


def scan(archive: Path, reader: Reader, wanted: Callable[[str], bool]) -> tuple[int, list[Finding]]:
    """Run ``reader`` over every regular file of a tar that ``wanted`` picks: (files, findings)."""
    scanned = 0
    findings: list[Finding] = []
    with tarfile.open(archive, mode="r|") as tar:
        for member in tar:
            if not member.isreg() or not wanted(member.name):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            scanned += 1
            findings.extend(reader(member.name, handle.read()))
    return scanned, findings

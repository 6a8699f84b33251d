"""The CPR corpus (tests/unit/data/cpr_corpus.json) and events built around its values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.unit.builders import case, event_dict

CORPUS_FILE = Path(__file__).resolve().parent / "data" / "cpr_corpus.json"
_PLACEHOLDER = "__corpus_value__"
POSITIONS = ("subject", "id", "data.note", "key")


@dataclass(frozen=True)
class Entry:
    """One corpus value: its raw JSON literal and what it shows."""

    literal: bytes
    note: str

    @property
    def decoded(self) -> Any:
        return orjson.loads(self.literal)

    @property
    def is_string(self) -> bool:
        return self.literal.startswith(b'"')

    def forms(self) -> list[str]:
        """The texts of the value a leak could show: as written, decoded, its digits."""
        forms = [self.literal.decode()]
        decoded = self.decoded
        forms.append(decoded if isinstance(decoded, str) else repr(decoded))
        return [form.strip('"') for form in forms if len(form.strip('"')) >= 6]

    def __str__(self) -> str:
        return self.note


def _load(kind: str) -> list[Entry]:
    doc = json.loads(CORPUS_FILE.read_text(encoding="utf-8"))
    return [Entry(e["json"].encode() if "json" in e else orjson.dumps(e["value"]), e["note"])
            for e in doc[kind]]


REFUSED = _load("refused")
PASSED = _load("passed")


def base_event(event_id: str = "corpus-1") -> dict[str, Any]:
    """A valid pseudonymised case event (no CPR number anywhere)."""
    return event_dict("case.opened", case("MOM-2026-00123", "jobcenter", kle="32.24.06"),
                      event_id=event_id)


def event_bytes(entry: Entry, position: str, event: dict[str, Any] | None = None) -> bytes:
    """The JSON bytes of an event with ``entry``'s literal at ``position``.

    ``key`` puts a string value as a key inside ``data`` (numbers stay values there).
    """
    raw = orjson.loads(orjson.dumps(event or base_event()))
    if position == "data.note":
        raw["data"]["note"] = _PLACEHOLDER
    elif position == "key":
        raw["data"][_PLACEHOLDER] = "ringede"
    else:
        raw[position] = _PLACEHOLDER
    literal = entry.literal if position != "key" or entry.is_string else b'"k"'
    payload = orjson.dumps(raw).replace(f'"{_PLACEHOLDER}"'.encode(), literal)
    if position == "key" and not entry.is_string:
        payload = payload.replace(b'"ringede"', entry.literal)
    return payload

"""The typed notification, audit record and dead letter: the JSON of DESIGN.md, byte for byte."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.serializers import codecs

from advisering.engine.notification import AuditRecord, Notification
from advisering.events import Rejection, RejectReason
from advisering.kafka.deadletters import dead_letter
from advisering.worker import steps
from tests.unit.builders import CITIZEN_A, CREATED, event_dict, real_matcher

ROOT = Path(__file__).resolve().parents[2]
# The field order of DESIGN.md's notification (plus the rule's title, which the code adds).
NOTIFICATION_FIELDS = ["id", "rule", "title", "severity", "recipient", "related_case", "trigger",
                       "citizen", "message", "legal_basis", "created"]
AUDIT_FIELDS = ["notification_id", "citizen", "recipient", "rule", "legal_basis", "disclosed",
                "related_case", "trigger", "created", "title"]
DEAD_LETTER_FIELDS = ["reason", "path", "message", "problems", "source", "event_id", "topic",
                      "partition", "offset", "received", "payload", "payload_truncated"]


def fired() -> steps.Outbox:
    """The outbox of a sanction event for a parent with an open children's case."""
    bf = {"id": "DUBU-1", "kle": "34.15.00", "status": "oplyst", "department": "boern-familie",
          "unit": "bf-syd", "caseworker": "bf-0042"}
    jc = {"id": "MOM-1", "kle": "32.24.06", "status": "oplyst", "department": "jobcenter",
          "unit": "jc-nord"}
    state = None
    matcher = real_matcher()
    for raw in (event_dict("case.opened", bf, event_id="o-1", time="2026-11-01T09:00:00+01:00"),
                event_dict("benefit.changed", jc, event_id="s-1",
                           time="2026-11-02T09:00:00+01:00", benefit={"action": "sanctioned"})):
        state, box = steps.correlate(CITIZEN_A, orjson.dumps(raw), state, matcher, now=CREATED)
    return box


def test_notification_json_has_the_design_fields_in_order() -> None:
    """The encoded notification and audit record keep DESIGN.md's field names and order."""
    box = fired()
    [(key, value)] = box.notifications
    raw = orjson.loads(value)
    assert list(raw) == NOTIFICATION_FIELDS
    assert list(raw["recipient"]) == ["caseworker", "unit", "department"]
    assert list(raw["related_case"]) == ["id", "source", "kle"]
    assert list(raw["trigger"]) == ["event_id", "source", "type", "department", "time"]
    assert key == b"bf-0042"
    [(_, audit)] = box.audit
    assert list(orjson.loads(audit)) == AUDIT_FIELDS


def test_encoding_as_a_dict_matches_the_dataclass_fields() -> None:
    """encode() writes exactly the dataclasses' fields, in their order (a new field cannot hide)."""
    box = fired()
    [(_, value)] = box.notifications
    notification = Notification.decode(value)
    assert notification.encode() == orjson.dumps(notification)
    audit = AuditRecord.of(notification)
    assert audit.encode() == orjson.dumps(audit)


def test_decoding_and_encoding_again_gives_the_same_bytes() -> None:
    """Notification.decode then encode is the identity on what the worker sends."""
    [(_, value)] = fired().notifications
    notification = Notification.decode(value)
    assert notification.encode() == value
    assert orjson.dumps(notification.to_json()) == value
    audit = AuditRecord.of(notification)
    assert (audit.notification_id, audit.disclosed) == (notification.id, notification.message)


@pytest.mark.parametrize("change", [
    {"recipient": None}, {"recipient": {"caseworker": None}}, {"id": 7},
    {"trigger": {"event_id": "e"}}, {"related_case": []},
])
def test_another_shape_is_a_value_error(change: dict[str, Any]) -> None:
    """A record of another shape is refused with ValueError, not half-read."""
    [(_, value)] = fired().notifications
    with pytest.raises(ValueError):
        Notification.decode(orjson.dumps({**orjson.loads(value), **change}))
    with pytest.raises(ValueError):
        Notification.decode(b"not json")


def test_dead_letter_json_has_its_fields_in_order() -> None:
    """The typed dead letter encodes the same fields in the same order as before."""
    rejection = Rejection(RejectReason.INVALID_FIELD, "data.case.kle", "bad kle",
                          (("data.case.kle", "bad"),))
    key, value = dead_letter(rejection, b'{"source": "momentum", "id": "e-1"}', topic="t",
                             partition=0, offset=3, received=CREATED)
    raw = orjson.loads(value)
    assert key == b"momentum"
    assert list(raw) == DEAD_LETTER_FIELDS
    assert raw["problems"] == [{"path": "data.case.kle", "message": "bad"}]
    assert (raw["event_id"], raw["offset"], raw["received"]) == ("e-1", 3, CREATED)


def test_importing_the_package_reads_no_home_and_registers_no_codec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Path.home() and Faust's codec registry are touched when used, never on import."""
    def no_home() -> Path:
        raise AssertionError("Path.home() read at import time")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    monkeypatch.delitem(codecs.codecs, "citizen-state", raising=False)
    for name in ("advisering.settings", "advisering.worker.app"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        importlib.import_module(name)
    assert "citizen-state" not in codecs.codecs

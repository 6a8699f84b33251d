"""A citizen's disclosure log: the CPR number in, pseudonymised at once, the audit store read.

The CPR number is checked and turned into pseudonyms here, at the edge, and
goes nowhere else: not into the store (lookups are recorded by pseudonym),
not into a log line, not into the answer. The answer (``InsightReport``) is
what the case system gets as JSON and what the Danish letter
(:mod:`advisering.insight.letter`) is written from.

Key rotation: a person is looked up under every pseudonym their CPR number
has had, one per key (``ADVISERING_PSEUDONYM_KEY`` and, after a rotation,
``ADVISERING_PSEUDONYM_KEY_PREVIOUS``); :func:`pseudonyms_of` is the one
place that list is made, and the store takes a list.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from advisering.audit.store import AuditStorage, Lookup
from advisering.cpr_text import digits_are_cpr
from advisering.engine.notification import AuditRecord
from advisering.pseudonyms import pseudonym_of_digits

MUNICIPAL_TIME = ZoneInfo("Europe/Copenhagen")
"""Dates in a request (--from, --to) are the municipality's calendar days."""
_CPR_FORM = re.compile(r"^[0-9]{6}-?[0-9]{4}$")
MAX_CPR_INPUT = 32


class InsightRequestError(ValueError):
    """A malformed request: the message says what is wrong and never repeats the CPR number."""


def cpr_digits_of(value: str) -> str:
    """The ten digits of a CPR number given as DDMMYYXXXX or DDMMYY-XXXX (surrounding blanks ok).

    ``InsightRequestError`` for anything else, including a number whose first
    six digits are no date; the message never contains the value.
    """
    text = value.strip() if len(value) <= MAX_CPR_INPUT else value
    if not _CPR_FORM.match(text):
        raise InsightRequestError(
            "the CPR number must be ten digits, written DDMMYYXXXX or DDMMYY-XXXX")
    digits = text.replace("-", "")
    if not digits_are_cpr(digits):
        raise InsightRequestError(
            "the CPR number's first six digits (DDMMYY) are no real birth date")
    return digits


def pseudonyms_of(digits: str, key: bytes, previous: bytes | None = None) -> tuple[str, ...]:
    """Every pseudonym the person may be recorded under: the current key's, then the previous'."""
    names = [pseudonym_of_digits(digits, key)]
    if previous is not None and previous != key:
        names.append(pseudonym_of_digits(digits, previous))
    return tuple(names)


def parse_day(value: str, name: str) -> dt.date:
    """A date YYYY-MM-DD, or ``InsightRequestError`` naming the field."""
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InsightRequestError(f"{name} must be a date written YYYY-MM-DD") from None


@dataclass(frozen=True)
class Period:
    """The days asked about (both inclusive, municipal calendar), or open at either end."""

    first: dt.date | None = None
    last: dt.date | None = None

    def __post_init__(self) -> None:
        if self.first and self.last and self.last < self.first:
            raise InsightRequestError("the period ends (to) before it begins (from)")

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """[start, end) as moments: midnight of the first day, midnight after the last."""
        start = end = None
        if self.first is not None:
            start = dt.datetime.combine(self.first, dt.time(), MUNICIPAL_TIME)
        if self.last is not None:
            end = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(), MUNICIPAL_TIME)
        return start, end


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CaseRef(_Frozen):
    """The case through which the recipient knows the citizen: their own case."""

    id: str
    source: str
    kle: str


class TriggerRef(_Frozen):
    """The event that made the rule fire: its type, its department (none for registries), when."""

    type: str
    department: str | None
    source: str
    time: str
    event_id: str


class Told(_Frozen):
    """Who was told: the department, the unit and, when the case has one, the caseworker."""

    department: str
    unit: str
    caseworker: str | None


class Disclosure(_Frozen):
    """One disclosure about the citizen, as the audit record holds it."""

    notification_id: str
    disclosed_at: str
    rule: str
    rule_title: str | None
    legal_basis: str
    trigger: TriggerRef
    told: Told
    case: CaseRef
    message: str

    @classmethod
    def of(cls, record: AuditRecord) -> Disclosure:
        """The disclosure an audit record describes."""
        trigger, recipient, case = record.trigger, record.recipient, record.related_case
        return cls(
            notification_id=record.notification_id, disclosed_at=record.created,
            rule=record.rule, rule_title=record.title, legal_basis=record.legal_basis,
            trigger=TriggerRef(type=trigger.type, department=trigger.department,
                               source=trigger.source, time=trigger.time,
                               event_id=trigger.event_id),
            told=Told(department=recipient.department, unit=recipient.unit,
                      caseworker=recipient.caseworker),
            case=CaseRef(id=case.id, source=case.source, kle=case.kle),
            message=record.disclosed)


class InsightReport(_Frozen):
    """The answer for the case system (``--format json``, ``POST /api/v1/insight``)."""

    generated_at: str
    period_from: dt.date | None
    period_to: dt.date | None
    count: int
    truncated: bool
    disclosures: list[Disclosure]


@dataclass(frozen=True)
class Asker:
    """Who asks: the API's token holder, or an operator at the command line (``via="cli"``)."""

    via: str
    caseworker: str | None = None
    department: str | None = None
    unit: str | None = None
    jti: str | None = None


def look_up(store: AuditStorage, pseudonyms: Sequence[str], period: Period, asker: Asker, *,
            limit: int, now: dt.datetime | None = None) -> tuple[InsightReport, Lookup]:
    """The citizen's disclosures in ``period``, and the lookup recorded in the store for it.

    At most ``limit`` disclosures (oldest first); ``truncated`` says there were more.
    """
    moment = now or dt.datetime.now(dt.UTC)
    start, end = period.bounds()
    records = store.disclosures(pseudonyms, start, end, limit + 1)
    truncated = len(records) > limit
    disclosures = [Disclosure.of(r) for r in records[:limit]]
    lookup = Lookup(id=uuid.uuid4().hex, asked=moment, citizen=pseudonyms[0], via=asker.via,
                    caseworker=asker.caseworker, department=asker.department, unit=asker.unit,
                    jti=asker.jti, disclosures=len(disclosures))
    store.add_lookup(lookup)
    report = InsightReport(
        generated_at=moment.astimezone(MUNICIPAL_TIME).isoformat(timespec="seconds"),
        period_from=period.first, period_to=period.last, count=len(disclosures),
        truncated=truncated, disclosures=disclosures)
    return report, lookup

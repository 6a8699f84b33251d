"""HTTP ingest for source systems that do not speak Kafka: ``POST /api/v1/events``.

One CloudEvent (JSON), a batch (JSON array) or NDJSON. A batch is
all-or-nothing: when any event is invalid the answer is 422 listing every
problem by index and field path, and nothing is published, so a client fixes
and resends the whole request. 202 is answered only after Kafka confirmed
every event (idempotent producer, ``acks=all``); when Kafka cannot confirm in
time the answer is 503 with ``Retry-After`` and the client resends. Resending
is always safe: an event is identified by (source, id), and the worker never
notifies twice for the same event.

Who may say what: the API key names the source (401 without a valid one);
an event may only carry its own source, and only the event types and
departments granted to it in the sources file (403, reason ``not_granted``,
naming the type or department per event). The sources file is reloaded
when it changes (:mod:`advisering.http.sources_reload`), so a rotated or
revoked key or a changed grant counts from the next request on.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from advisering import jsonweb, metrics
from advisering.edge.prepare import prepare_event
from advisering.events import (
    DEFAULT_MAX_DEPTH,
    CaseEvent,
    Rejection,
    RejectReason,
    Vocabulary,
    encode_event,
)
from advisering.grants import GrantCheck
from advisering.http.sources import utc_now
from advisering.http.sources_reload import ReloadingSources
from advisering.jsondepth import json_too_deep
from advisering.kafka.producer import AsyncProducer, DeliveryError
from advisering.kafka.topics import CASE_EVENTS
from advisering.log import get_logger

log = get_logger(__name__)

JSON_TYPES = {"application/json", "application/cloudevents+json",
              "application/cloudevents-batch+json"}
NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/x-jsonlines"}
MAX_BODY = web.AppKey("max_body", int)
_BATCH = re.compile(rb"\s*\[")  # a JSON body that is an array: a batch of events


@dataclass(frozen=True)
class IngestConfig:
    """What the ingest needs besides its sources: the pseudonym key, the vocabulary, a limit."""

    pseudonym_key: bytes
    vocabulary: Vocabulary
    max_events: int


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one event of a request: which event, which field, why.

    ``reason`` is None only for an event claiming another source (a 403,
    not a rejection reason of the vocabulary): its JSON then has no reason.
    """

    index: int | None
    path: str
    message: str
    reason: str | None = None

    def to_json(self) -> dict[str, object]:
        """The problem as the error answer lists it."""
        if self.reason is None:
            return {"index": self.index, "path": self.path, "message": self.message}
        return {"index": self.index, "reason": self.reason, "path": self.path,
                "message": self.message}


def _listed(problems: list[Problem]) -> list[dict[str, object]]:
    return [problem.to_json() for problem in problems]


def error_response(status: int, error: str, message: str, **extra: object) -> web.Response:
    """An error answer (:func:`advisering.jsonweb.error_response`), counted by status."""
    metrics.INGEST_REQUESTS.labels(str(status)).inc()
    return jsonweb.error_response(status, error, message, **extra)


def presented_key(request: web.Request) -> str | None:
    """The API key a source sent: ``Authorization: Bearer`` first, then ``X-API-Key``."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key")


class BodyError(ValueError):
    """A body the ingest cannot take apart: the reason and a client-facing message."""

    def __init__(self, reason: str, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.index = index


def parse_body(body: bytes, content_type: str,
               max_depth: int = DEFAULT_MAX_DEPTH) -> list[object]:
    """The events of a request body; raises BodyError with a client-facing message.

    JSON nested deeper than ``max_depth`` is refused before it is parsed (the
    outer array of a batch is not counted: an event may nest as deeply in a
    batch as alone), and the body is never echoed.
    """
    if content_type in NDJSON_TYPES:
        events: list[object] = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            if json_too_deep(line, max_depth):
                raise BodyError(RejectReason.TOO_DEEP.value,
                                f"line {number} is nested deeper than {max_depth} levels",
                                len(events))
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise BodyError("not_json", f"line {number} is not JSON: {exc}") from exc
        return events
    batch = _BATCH.match(body) is not None
    if json_too_deep(body, max_depth + (1 if batch else 0)):
        raise BodyError(RejectReason.TOO_DEEP.value,
                        f"the body is nested deeper than {max_depth} levels"
                        + (" (inside the batch's array)" if batch else ""))
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError("not_json", f"the body is not JSON: {exc}") from exc
    return value if isinstance(value, list) else [value]


class IngestHandler:
    """The ingest endpoint, with its producer and the registered sources."""

    def __init__(self, config: IngestConfig, producer: AsyncProducer,
                 sources: ReloadingSources,
                 wall_clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.config = config
        self.producer = producer
        self.sources = sources
        self.wall_clock = wall_clock  # a rotated-out key's expiry is checked against it
        # The series every accepted request counts, looked up once, not per request.
        self._accepted_events = metrics.INGEST_EVENTS.labels("accepted", "")
        self._accepted_requests = metrics.INGEST_REQUESTS.labels("202")

    async def post_events(self, request: web.Request) -> web.Response:
        """Publish a batch all or nothing: authenticated, parsed, valid and granted, or refused."""
        sources = self.sources.current()  # one snapshot per request
        source = sources.authenticator.source_for(presented_key(request), self.wall_clock())
        if source is None:
            return error_response(401, "unauthorized",
                                  "a valid API key is required (Authorization: Bearer <key>)")
        raw_events = await self._read_events(request)
        if isinstance(raw_events, web.Response):
            return raw_events
        prepared, problems, foreign = self._prepare(raw_events, source)
        if foreign:
            return error_response(403, "forbidden",
                                  f"the API key belongs to source {source!r}; it may only "
                                  "publish events whose source is its own",
                                  problems=_listed(foreign))
        refused = not_granted(prepared, sources.grants)
        if refused:
            # Refused outright, whatever else is wrong: the other problems come along.
            everything = sorted(refused + problems, key=lambda p: p.index or 0)
            for problem in everything:
                self._count_rejected(problem.reason or "", 1)
            log.warning("ingest_not_granted", source=source, events=len(refused))
            return error_response(403, "not_granted",
                                  f"{len(refused)} of {len(raw_events)} event(s) are outside "
                                  f"what source {source!r} is granted; nothing was published",
                                  problems=_listed(everything))
        if problems:
            for problem in problems:
                self._count_rejected(problem.reason or "", 1)
            return error_response(422, "invalid_events",
                                  f"{len({p.index for p in problems})} of {len(raw_events)} "
                                  "event(s) are invalid; nothing was published",
                                  problems=_listed(problems))
        return await self._publish(source, prepared)

    async def _read_events(self, request: web.Request) -> list[object] | web.Response:
        """The request's events as parsed JSON values, or the response refusing the body."""
        if request.content_type not in JSON_TYPES | NDJSON_TYPES:
            return error_response(415, "unsupported_media_type",
                                  "send application/json (one event or an array) or "
                                  "application/x-ndjson")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "body_too_large",
                                  f"the body exceeds {request.app[MAX_BODY]} bytes")
        try:
            raw_events = parse_body(body, request.content_type, self.config.vocabulary.max_depth)
        except BodyError as exc:
            self._count_rejected(exc.reason, 1)
            return error_response(422, "invalid_events", str(exc),
                                  problems=_listed([Problem(exc.index, "", str(exc),
                                                            exc.reason)]))
        if not raw_events:
            return error_response(422, "invalid_events", "the request holds no event")
        if len(raw_events) > self.config.max_events:
            return error_response(413, "too_many_events",
                                  f"at most {self.config.max_events} events per request")
        return raw_events

    async def _publish(self, source: str, prepared: list[tuple[int, CaseEvent]]) -> web.Response:
        """Send every event and answer 202 only once Kafka has confirmed them all."""
        began = time.perf_counter()
        try:
            await self.producer.send_all(
                [(CASE_EVENTS, event.key.encode(), encode_event(event)) for _, event in prepared]
            )
        except DeliveryError as exc:
            log.warning("ingest_kafka_unavailable", source=source, events=len(prepared),
                        error=str(exc)[:200])
            self._count_rejected("kafka_unavailable", len(prepared))
            return error_response(503, "kafka_unavailable",
                                  "Kafka did not confirm the events; nothing may be assumed "
                                  "accepted. Send the same request again later.")
        metrics.INGEST_PRODUCE_SECONDS.observe(time.perf_counter() - began)
        self._accepted_events.inc(len(prepared))
        self._accepted_requests.inc()
        # DEBUG, not INFO: a line per accepted request cost as much as the edge's
        # own work on a one-event request; the counts are in /metrics.
        log.debug("ingest_accepted", source=source, events=len(prepared))
        return jsonweb.json_response(
            {"accepted": len(prepared), "ids": [event.id for _, event in prepared]}, 202)

    def _prepare(
        self, raw_events: list[object], source: str
    ) -> tuple[list[tuple[int, CaseEvent]], list[Problem], list[Problem]]:
        prepared: list[tuple[int, CaseEvent]] = []
        problems: list[Problem] = []
        foreign: list[Problem] = []
        for index, raw in enumerate(raw_events):
            claimed = raw.get("source") if isinstance(raw, dict) else None
            if isinstance(claimed, str) and claimed != source:
                foreign.append(Problem(index, "source",
                                       "source differs from the API key's source"))
                continue
            # The events were parsed from this request: ours to change, no copy needed.
            result = prepare_event(raw, self.config.pseudonym_key, self.config.vocabulary,
                                   owned=True)
            if isinstance(result, Rejection):
                details = result.problems or ((result.path, result.message),)
                problems.extend(Problem(index, path, message, result.reason.value)
                                for path, message in details)
                continue
            prepared.append((index, result))
        return prepared, problems, foreign

    def _count_rejected(self, reason: str, count: int) -> None:
        metrics.INGEST_EVENTS.labels("rejected", reason).inc(count)


def not_granted(prepared: list[tuple[int, CaseEvent]], grants: GrantCheck) -> list[Problem]:
    """One problem per valid event outside its source's grants (its type or its department).

    The events were validated first: type and department are vocabulary
    names, so the message may name them; it holds no citizen data.
    """
    refused = []
    for index, event in prepared:
        refusal = grants.refusal(event)
        if refusal is not None:
            refused.append(Problem(index, refusal.path, refusal.message, refusal.reason.value))
    return refused

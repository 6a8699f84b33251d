"""The inbox's live streams (Server-Sent Events): bounded, per token, closed when it ends.

Each open stream has its own queue of at most ``ADVISERING_SSE_QUEUE_MAX``
notifications. A client that reads slower than notifications arrive would
make that queue grow without end; instead it is sent ``event: reload`` and
dropped (the page then reloads the list, which is the truth anyway, and
opens a new stream). A write that takes longer than
``ADVISERING_SSE_WRITE_TIMEOUT_SECONDS`` drops the stream without more
ado: that client is not reading at all.

One token (``jti``) may hold ``ADVISERING_SSE_STREAMS_PER_TOKEN`` streams;
one more closes the oldest with ``event: replaced`` (a leaked token cannot
open connections without bound). A stream ends with ``event: expired`` when
its token expires and with ``event: revoked`` when the token is revoked
(``advisering.inbox.revocation``): a stream is no way to outlive a token.
Every final event carries a one-field JSON body, because browsers dispatch
no event without data.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from advisering import metrics
from advisering.engine.notification import Notification
from advisering.inbox.store import Viewer, routed_to, visible_to
from advisering.inbox.tokens import Claims

FINAL_EVENTS = {"overflow": "reload", "expired": "expired", "revoked": "revoked",
                "replaced": "replaced"}
"""Why a stream ends -> the event the client is sent last (none: it is gone or we stop)."""


@dataclass(frozen=True)
class LiveLimits:
    """The bounds of every stream (ADVISERING_SSE_*), and the keep-alive interval."""

    queue_max: int = 100
    streams_per_token: int = 3
    write_timeout: float = 10.0
    heartbeat: float = 15.0


@dataclass(eq=False)
class LiveStream:
    """One open stream: whose, until when, what is queued for it, and why it ends (if it does)."""

    viewer: Viewer
    jti: str
    expires: int
    queue: asyncio.Queue[Notification]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ending: str | None = None

    def end(self, reason: str) -> None:
        """Ask the stream to close for ``reason`` (the first reason wins)."""
        if self.ending is None:
            self.ending = reason
        self.wake.set()


class Broadcast:
    """The open live streams, by token; fans new notifications out to those who may see them."""

    def __init__(self, limits: LiveLimits | None = None) -> None:
        self.limits = limits or LiveLimits()
        self._by_jti: dict[str, list[LiveStream]] = {}

    def __len__(self) -> int:
        return sum(len(streams) for streams in self._by_jti.values())

    def open(self, viewer: Viewer, claims: Claims) -> LiveStream:
        """Register a new stream for the token; the token's oldest beyond the cap is ended."""
        stream = LiveStream(viewer, claims.jti, claims.expires,
                            asyncio.Queue(maxsize=self.limits.queue_max))
        streams = self._by_jti.setdefault(claims.jti, [])
        streams.append(stream)
        for oldest in streams[:-self.limits.streams_per_token]:
            oldest.end("replaced")
        metrics.SSE_STREAMS.inc()
        return stream

    def close(self, stream: LiveStream) -> None:
        """Forget a stream that has ended."""
        streams = self._by_jti.get(stream.jti, [])
        if stream in streams:
            streams.remove(stream)
            metrics.SSE_STREAMS.dec()
        if not streams:
            self._by_jti.pop(stream.jti, None)

    def publish(self, notifications: list[Notification]) -> None:
        """Queue each notification on every open stream whose viewer may see it (on the loop).

        A stream whose queue is full is ended (``event: reload``) rather than
        left to hold a growing backlog.
        """
        for streams in list(self._by_jti.values()):
            for stream in streams:
                if stream.ending is not None:
                    continue
                for notification in notifications:
                    if not visible_to(stream.viewer, notification):
                        continue
                    try:
                        stream.queue.put_nowait(notification)
                    except asyncio.QueueFull:
                        stream.end("overflow")
                        break
                stream.wake.set()

    def wants(self, department: str, unit: str, caseworker: str | None) -> bool:
        """Whether an open stream may show a notification so routed (spares reading it back)."""
        return any(routed_to(stream.viewer, department, unit, caseworker)
                   for streams in self._by_jti.values() for stream in streams
                   if stream.ending is None)

    def revoke(self, jtis: frozenset[str]) -> None:
        """End every stream of a token that was just revoked."""
        for jti in jtis:
            for stream in self._by_jti.get(jti, []):
                stream.end("revoked")

    def end_all(self, reason: str = "shutdown") -> None:
        """End every stream (serve stops)."""
        for streams in self._by_jti.values():
            for stream in streams:
                stream.end(reason)


Present = Callable[[Notification], dict[str, object]]


def _event(name: str, data: bytes, event_id: str | None = None) -> bytes:
    head = b"event: " + name.encode() + b"\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


async def run_stream(request: web.Request, broadcast: Broadcast, stream: LiveStream,
                     present: Present) -> web.StreamResponse:
    """Write ``stream`` to the client until it ends; always unregisters it."""
    limits = broadcast.limits
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})

    async def write(data: bytes) -> None:
        await asyncio.wait_for(response.write(data), limits.write_timeout)

    reason = "client"
    try:
        await asyncio.wait_for(response.prepare(request), limits.write_timeout)
        await write(b": connected\n\n")
        while True:
            if stream.ending is not None:
                reason = stream.ending
                final = FINAL_EVENTS.get(reason)
                if final is not None:
                    await write(_event(final, orjson.dumps({"reason": reason})))
                break
            try:
                notification = stream.queue.get_nowait()
            except asyncio.QueueEmpty:
                await _idle(stream, limits, write)
                continue
            await write(_event("notification", orjson.dumps(present(notification)),
                               notification.id))
    except TimeoutError:
        reason = "write_timeout"
        if request.transport is not None:
            request.transport.abort()
    except (ConnectionResetError, asyncio.CancelledError):
        reason = "client" if stream.ending is None else stream.ending
    finally:
        broadcast.close(stream)
        metrics.SSE_CLOSED.labels(reason).inc()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(response.write_eof(), limits.write_timeout)
    return response


async def _idle(stream: LiveStream, limits: LiveLimits,
                write: Callable[[bytes], Awaitable[None]]) -> None:
    """Wait for news, the token's expiry or the next keep-alive, whichever comes first."""
    remaining = stream.expires - time.time()
    if remaining <= 0:
        stream.end("expired")
        return
    stream.wake.clear()
    if not stream.queue.empty() or stream.ending is not None:
        return
    try:
        await asyncio.wait_for(stream.wake.wait(), min(limits.heartbeat, remaining))
    except TimeoutError:
        if time.time() < stream.expires:
            await write(b": keep-alive\n\n")

"""Ingest scenario 0: the edge's steps on one core, no HTTP, no Kafka.

Microseconds per event of each step the ingest runs on an event: parse,
deep copy, pseudonymise, CPR scan, pydantic validation, encode; and all of
them as the ingest runs them (:data:`INGEST_PER_EVENT`, no copy).
"""

from __future__ import annotations

import copy
import gc
import hashlib
import time
from collections.abc import Callable
from typing import Any

import orjson

from advisering.edge.prepare import prepare_event
from advisering.events import CaseEvent, Vocabulary, encode_event
from advisering.privacy import cpr_paths, find_cprs, pseudonymise

INGEST_PER_EVENT = "ingest per event: loads, prepare (owned), encode"


def _pseudonymise_parties(event: dict[str, Any], key: bytes) -> dict[str, Any]:
    for party in event["data"]["parties"]:
        if "cpr" in party:
            party["citizen"] = pseudonymise(party.pop("cpr"), key)
    return event


def edge_steps(events: list[dict[str, Any]], key: bytes,
               vocabulary: Vocabulary) -> dict[str, Callable[[], object]]:
    """Each step over all ``events``, its inputs made beforehand."""
    bodies = [orjson.dumps(e) for e in events]
    copies = [copy.deepcopy(e) for e in events]
    pseudonymised = [_pseudonymise_parties(copy.deepcopy(e), key) for e in events]
    validated = [CaseEvent.model_validate(raw) for raw in pseudonymised]
    return {
        "orjson.loads (request body)": lambda: [orjson.loads(b) for b in bodies],
        "copy.deepcopy (edge)": lambda: [copy.deepcopy(e) for e in copies],
        "pseudonymise parties (HMAC)": lambda: [
            pseudonymise(p["cpr"], key) for e in events for p in e["data"]["parties"]
            if "cpr" in p],
        "cpr_paths scan (validate_event)": lambda: [list(cpr_paths(e)) for e in pseudonymised],
        "(reference) find_cprs over orjson.dumps": lambda: [
            find_cprs(orjson.dumps(e).decode()) for e in pseudonymised],
        "CaseEvent.model_validate (pydantic)": lambda: [
            CaseEvent.model_validate(e) for e in pseudonymised],
        "encode_event": lambda: [encode_event(e) for e in validated],
        "prepare_event (all edge steps)": lambda: [
            prepare_event(e, key, vocabulary) for e in copies],
        "prepare_event + encode_event": lambda: [
            encode_event(p) for e in copies
            for p in [prepare_event(e, key, vocabulary)] if isinstance(p, CaseEvent)],
        # What the ingest does per event once the body is read: parse, prepare in
        # place (owned, no copy), encode, key. The figure to compare across versions.
        INGEST_PER_EVENT: lambda: [
            (p.key.encode(), encode_event(p)) for b in bodies
            for p in [prepare_event(orjson.loads(b), key, vocabulary, owned=True)]
            if isinstance(p, CaseEvent)],
        "sha256 of an API key (auth)": lambda: [
            hashlib.sha256(b"adv_" + b"x" * 43).digest() for _ in events],
    }


def edge_breakdown(events: list[dict[str, Any]], key: bytes, vocabulary: Vocabulary,
                   repeats: int) -> dict[str, Any]:
    """Microseconds per event of each step the ingest runs on an event (best of repeats, no GC)."""
    steps = edge_steps(events, key, vocabulary)
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):  # round robin, so that a busy moment hits every step alike
        for name, step in steps.items():
            # As timeit: without the cyclic GC, which would otherwise walk these big
            # lists in whichever step happens to trigger it.
            gc.collect()
            gc.disable()
            try:
                began = time.perf_counter()
                step()
                best[name] = min(best[name], time.perf_counter() - began)
            finally:
                gc.enable()
    out = {name: round(seconds / len(events) * 1e6, 1) for name, seconds in best.items()}
    return {"events": len(events), "repeats": repeats, "us_per_event": out}

"""Scenario 1: the engine alone on one core, no Kafka, and the worker's own steps.

As the correlate hop runs it: decode (CaseEvent.model_validate_json; intake
validated the event), process (the real rules of rules/ and topics/), orjson
of the notifications. Beside it: intake validation + engine (decode_event with
the CPR ban and the vocabulary), decoding alone, and the worker's per-record
steps. Imports only what runs without a broker, so ``--engine-only`` and
benchmarks/engine_compare.py need no Kafka client code of the tree measured.
"""

from __future__ import annotations

import argparse
import cProfile
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from harness import ROOT, log
from harness.compat import imported
from harness.profiles import profile_text
from harness.results import run_info, write_results
from harness.stats import timed

from advisering.engine.evaluate import process
from advisering.engine.matcher import Matcher
from advisering.engine.rules import load_rules
from advisering.engine.trusted import decode_validated
from advisering.events import CaseEvent, Rejection, Vocabulary, decode_event, validate_event
from advisering.grants import GrantCheck
from advisering.settings import Settings
from advisering.worker import steps
from scenarios.synthetic import GRANTS, Prepared, Stream, build_stream, latency_triggers

CASE_EVENTS = imported("CASE_EVENTS", "advisering.kafka.topics", "advisering.broker.topic_specs")
now_iso = imported("now_iso", "advisering.worker.tally", "advisering.worker.steps")
load_vocabulary = imported("load_vocabulary", "advisering.kafka.topics",
                           "advisering.broker.topic_specs")
ENGINE_RESULTS = ROOT / "benchmarks" / "results" / "pipeline-engine-latest.json"


def load_engine(root: Path, bootstrap: str) -> tuple[Matcher, Vocabulary]:
    """The rules of ``root``/rules, checked against the vocabulary of ``root``/topics."""
    settings = Settings(bootstrap_servers=bootstrap, rules_dir=root / "rules",
                        topics_dir=root / "topics")
    vocabulary = load_vocabulary(settings.topics_dir, settings)
    return Matcher(load_rules(settings.rules_dir, vocabulary)), vocabulary


def build_inputs(args: argparse.Namespace, matcher: Matcher, vocabulary: Vocabulary,
                 key: str) -> tuple[Stream, list[Prepared], int]:
    """The preloaded stream, the latency triggers and the number of citizens."""
    n = args.events
    n_citizens = max(10, min(args.citizens, n // 4))
    log(f"building {n} synthetic events for {n_citizens} citizens "
        f"({len(matcher.compiled)} rules)")
    began = time.perf_counter()
    stream = build_stream(n, n_citizens, key.encode(), vocabulary, args.seed)
    triggers = latency_triggers(stream, args.latency_events, key.encode(), vocabulary,
                                args.seed)
    log(f"  built in {time.perf_counter() - began:.1f}s: {dict(stream.counts.most_common())}")
    return stream, triggers, n_citizens


def engine_decode(payload: bytes | None, _vocabulary: Vocabulary) -> CaseEvent | Rejection:
    """The engine's decode, as the correlate hop does it (intake validated the event)."""
    return decode_validated(payload or b"")


def engine_pass(payloads: list[bytes], matcher: Any, vocabulary: Vocabulary,
                decode: Callable[[bytes | None, Vocabulary], CaseEvent | Rejection] = engine_decode,
                ) -> dict[str, int]:
    """decode -> overview + rules -> orjson notifications, over the whole stream.

    With ``decode=decode_event`` it includes the intake's validation as well
    (the CPR ban and the vocabulary): one core's work for an event across
    both hops, Faust aside.
    """
    states: dict[str, Any] = {}
    created = now_iso()
    notifications = 0
    encoded_bytes = 0
    for payload in payloads:
        event = decode(payload, vocabulary)
        if isinstance(event, Rejection):
            raise RuntimeError(f"engine bench: event rejected: {event}")
        parties = event.data.parties
        citizens = ((parties[0].citizen,) if len(parties) == 1
                    else dict.fromkeys(party.citizen for party in parties))
        for citizen in citizens:
            outcome = process(states.get(citizen), event, citizen, matcher, created)
            if outcome.state.is_empty():
                states.pop(citizen, None)
            else:
                states[citizen] = outcome.state
            for notification in outcome.notifications:
                # The worker's own encoding; an older checkout's notifications are dicts.
                encode = getattr(notification, "encode", None)
                encoded_bytes += len(encode() if encode else orjson.dumps(notification))
                notifications += 1
    return {"notifications": notifications, "notification_bytes": encoded_bytes,
            "citizens_in_state": len(states)}


def steps_pass(payloads: list[bytes], matcher: Any, vocabulary: Vocabulary,
               changelog: bool) -> dict[str, int]:
    """What the worker's agents run per record, minus Faust: intake + correlate (+ changelog)."""
    # Not at the top: engine_compare imports this module in older checkouts without tally.
    from advisering.worker import tally  # noqa: PLC0415
    states: dict[bytes, Any] = {}
    notifications = 0
    grants = GrantCheck(GRANTS)
    for offset, payload in enumerate(payloads):
        box = steps.intake(payload, vocabulary, grants=grants, topic=CASE_EVENTS, partition=0,
                           offset=offset, now=now_iso())
        tally.record(box.counts)
        for key, value in box.citizen_events:
            state, out = steps.correlate(key.decode(), value, states.get(key), matcher,
                                         now=now_iso())
            tally.record(out.counts)
            notifications += len(out.notifications)
            if state.is_empty():
                states.pop(key, None)
            else:
                states[key] = state
                if changelog:  # the table's changelog record (CitizenStateCodec)
                    orjson.dumps(state.to_json())
    return {"notifications": notifications}


def bench_engine(stream: Stream, matcher: Any, vocabulary: Vocabulary, repeats: int,
                 profile: bool) -> dict[str, Any]:
    payloads = [p.value for p in stream.events]
    n = len(payloads)
    result: dict[str, Any] = timed({
        "engine": lambda: engine_pass(payloads, matcher, vocabulary),
        "validation_and_engine": lambda: engine_pass(payloads, matcher, vocabulary, decode_event),
        "decode_only": lambda: {"decoded": sum(
            1 for p in payloads if isinstance(decode_event(p, vocabulary), CaseEvent))},
        "decode_with_full_cpr_walk": lambda: {"decoded": sum(
            1 for p in payloads if isinstance(validate_event(orjson.loads(p), vocabulary),
                                               CaseEvent))},
        "worker_steps": lambda: steps_pass(payloads, matcher, vocabulary, False),
        "worker_steps_with_changelog": lambda: steps_pass(payloads, matcher, vocabulary, True),
    }, n, repeats)
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        steps_pass(payloads, matcher, vocabulary, True)
        prof.disable()
        text = profile_text(prof, "tottime", 25)
        result["profile_worker_steps_top"] = text
        print("\n--- cProfile: worker steps (intake + correlate + changelog), by tottime ---")
        print(text)
    return result


def engine_phase(stream: Stream, matcher: Any, vocabulary: Vocabulary,
                 args: argparse.Namespace) -> dict[str, Any]:
    """bench_engine with the phase's log lines."""
    log("1. engine alone (one core, no Kafka)")
    result = bench_engine(stream, matcher, vocabulary, args.repeats, args.profile)
    engine = result["engine"]
    log(f"  engine {engine['events_per_s']} ev/s ({engine['us_per_event']} us/event, "
        f"{engine['notifications']} notifications); worker steps "
        f"{result['worker_steps_with_changelog']['events_per_s']} ev/s")
    return result


def engine_note(row: dict[str, Any]) -> str:
    return f"{row['us_per_event']} us/event; {row['cpu_us_per_event']} us CPU/event"


ENGINE_ROWS = (
    ("engine: decode + process + orjson (1 core)", "engine"),
    ("intake validation + engine (1 core)", "validation_and_engine"),
    ("  decode_event only (intake validation)", "decode_only"),
    ("  decode with the full CPR walk (slow path)", "decode_with_full_cpr_walk"),
    ("  worker steps: intake + correlate", "worker_steps"),
    ("  worker steps + changelog encode", "worker_steps_with_changelog"),
)


def engine_rows(engine: dict[str, Any]) -> list[tuple[str, int, str]]:
    """The engine's rows of the printed table: (figure, events/s, note)."""
    return [(label, engine[name]["events_per_s"], engine_note(engine[name]))
            for label, name in ENGINE_ROWS]


def print_rows(rows: list[tuple[str, int, str]]) -> None:
    print()
    print(f"{'figure':46s} {'events/s':>10s}  note")
    print("-" * 86)
    for name, value, note in rows:
        print(f"{name:46s} {value:>10,}  {note}")


def run_engine_only(args: argparse.Namespace) -> int:
    """``--engine-only``: scenario 1 alone, its rows of the table, its own results file."""
    matcher, vocabulary = load_engine(ROOT, args.bootstrap)
    key = secrets.token_hex(32)
    stream, _triggers, n_citizens = build_inputs(args, matcher, vocabulary, key)
    results: dict[str, Any] = {
        **run_info("benchmarks/pipeline.py"),
        "config": {"events": args.events, "citizens": n_citizens,
                   "rules": len(matcher.compiled), "mix": dict(stream.counts.most_common())},
        "engine": engine_phase(stream, matcher, vocabulary, args),
    }
    print_rows(engine_rows(results["engine"]))
    output = args.output or ENGINE_RESULTS
    write_results(output, results)
    log(f"results written to {output}")
    return 0

"""Match cost per event of the indexed matcher against the naive loop, by rule count.

One run measures 10, 100, 1,000 and 10,000 rules (``--sizes``), each with:

naive      every compiled rule checked in full (``naive_matching``): type, then
           ``first_failed_condition``; O(rules) per event.
type-only  the previous matcher: rules of the event's type, each checked in full.
index      ``Matcher.matching``: type, department and KLE prefix by dictionary
           look-ups, the remaining conditions only within those candidates;
           the index's answer per (type, department, KLE) is memoised, and
           after the first (warm-up) pass every key is in the memo.
index-cold the same with ``memo_limit=0``: every event walks the index (the
           cost of a key seen for the first time). Reported, not targeted.

Constant selectivity: each rule set is spread over the core case event types
and departments and over a KLE plan that grows with the rule count (one
3-group KLE number per rule: 00.00.00 ... 99.09.09 at 10,000), and every event
is built from a randomly chosen rule (its type, department, KLE under its
prefix; random status, source and benefit action). So every event has about
the same number of candidates and matches at every size; the script prints
both so this can be checked. Most rules are specific (a 3-group KLE number,
a department), some are broad (a 1- or 2-group prefix, no department, no KLE
at all, citizen.* rules) in proportions that keep the broad ones' hit rate flat.

Timing: ``time.perf_counter`` around passes over the events (gc off; passes
calibrated to at least ``--min-seconds``), divided by the events matched; the
median of ``--repeats`` repeats. Repeats are interleaved across sizes and
variants, so load from other processes on a shared host does not skew one
size against another. The naive and type-only loops get fewer events at large
sizes so a run stays short; on those events every variant is checked to give
the naive loop's answer.

Usage:

    .venv/bin/python benchmarks/matching.py

Writes benchmarks/results/matching-latest.json. Targets (issue 6, item 5):
index(10000)/index(10) <= 2.5 and naive(10000)/index(10000) >= 100.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from advisering.engine.matcher import CompiledRule, Matcher, naive_matching
from advisering.engine.rules import Rule
from advisering.events import CORE_DEPARTMENTS, CaseEvent

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "matching-latest.json"
CASE_TYPES = (
    "case.opened", "case.status-changed", "case.closed", "case.reassigned",
    "case.party-added", "case.party-removed", "document.added", "appointment.missed",
    "benefit.changed",
)
CITIZEN_TYPES = ("citizen.moved", "citizen.admitted", "citizen.discharged", "citizen.deceased")
SOURCES = ("momentum", "dubu", "nexus", "kmd-sag")
STATUSES = ("opstaaet", "oplyst", "afgjort", "afsluttet")
ACTIONS = ("granted", "reduced", "stopped", "sanctioned")
CITIZEN = "ps1-" + "a" * 52
TARGET_GROWTH = 2.5
TARGET_SPEEDUP = 100.0


def leaf(number: int) -> str:
    """The KLE plan of the benchmark: leaf n is AA.BB.CC with 100 x 10 x 10 numbers."""
    return f"{number // 100 % 100:02d}.{number // 10 % 10:02d}.{number % 10:02d}"


def make_rules(size: int, rng: random.Random) -> list[Rule]:
    """``size`` rules over a KLE plan of ``max(size, 10)`` leaves; broad rules kept rare."""
    leaves = max(size, 10)
    rules = []
    for i in range(size):
        when: dict[str, Any]
        if i % 2500 == 2499 or (size < 2500 and i == size - 1):
            # Registry rules: nothing but the type (and a source) can narrow them.
            when = {"type": rng.choice(CITIZEN_TYPES), "source": "cpr-replika"}
        else:
            code = leaf(rng.randrange(leaves))
            when = {"type": rng.choice(CASE_TYPES)}
            if rng.random() < 0.85:
                when["department"] = rng.choice(CORE_DEPARTMENTS)
            roll = rng.random()
            if i % 10000 == 9998:
                pass  # no KLE condition: 1 per 10,000 rules
            elif roll < 0.01:
                when["kle"] = code[:2]
            elif roll < 0.11:
                when["kle"] = code[:5]
            else:
                when["kle"] = code
            if rng.random() < 0.3:
                when["status"] = rng.sample(STATUSES, rng.randint(1, 2))
            if rng.random() < 0.2:
                when["source"] = rng.choice(SOURCES)
            if when["type"] == "benefit.changed" and rng.random() < 0.6:
                when["where"] = {"benefit.action": rng.sample(ACTIONS, rng.randint(1, 2))}
        rules.append(Rule.model_validate({
            "id": f"regel-{i:05d}", "title": f"Benchmarkregel {i}",
            "legal_basis": "Forvaltningsloven § 28", "when": when, "notify": "related",
            "message": "Borgeren i din sag {related.id} ({event.type}, {event.date}).",
        }))
    return rules


def make_events(rules: Sequence[Rule], count: int, rng: random.Random) -> list[CaseEvent]:
    """Events each built to meet one random rule's type, department and KLE (5% citizen.*)."""
    case_rules = [r for r in rules if not r.when.type[0].startswith("citizen.")]
    events = []
    for n in range(count):
        data: dict[str, Any] = {"parties": [{"citizen": CITIZEN}]}
        if rng.random() < 0.05 or not case_rules:
            event_type, source = rng.choice(CITIZEN_TYPES), "cpr-replika"
        else:
            rule = rng.choice(case_rules)
            event_type, source = rule.when.type[0], rng.choice(SOURCES)
            prefix = rule.when.kle[0] if rule.when.kle else leaf(rng.randrange(len(rules)))
            groups = prefix.split(".")
            groups += [f"{rng.randrange(10):02d}" for _ in range(3 - len(groups))]
            data["case"] = {
                "id": f"SAG-{n}", "kle": ".".join(groups),
                "department": (rule.when.department or (rng.choice(CORE_DEPARTMENTS),))[0],
                "unit": "enhed-1", "status": rng.choice(STATUSES),
                "previous_status": rng.choice(STATUSES),
            }
            if event_type == "benefit.changed":
                data["benefit"] = {"action": rng.choice(ACTIONS)}
        events.append(CaseEvent.model_validate({
            "specversion": "1.0", "id": f"ev-{n}", "source": source, "type": event_type,
            "time": "2026-11-29T09:12:00+01:00", "data": data,
        }))
    return events


def type_only(matcher: Matcher) -> Callable[[CaseEvent], list[CompiledRule]]:
    """The matcher as it was before the index: by event type, then every condition."""
    by_type: dict[str, list[CompiledRule]] = {}
    for compiled in matcher.compiled:
        for event_type in compiled.types:
            by_type.setdefault(event_type, []).append(compiled)

    def match(event: CaseEvent) -> list[CompiledRule]:
        return [c for c in by_type.get(event.type, ())
                if c.first_failed_condition(event) is None]
    return match


Match = Callable[[CaseEvent], object]


def run_once(match: Match, events: Sequence[CaseEvent], loops: int) -> float:
    """Seconds per event of ``loops`` passes over ``events``, with the collector off."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(loops):
            for event in events:
                match(event)
        return (time.perf_counter() - start) / (loops * len(events))
    finally:
        gc.enable()


def calibrate(match: Match, events: Sequence[CaseEvent], min_seconds: float) -> int:
    """Passes over ``events`` that take at least ``min_seconds`` (this also warms up)."""
    loops = 1
    while run_once(match, events, loops) * loops * len(events) < min_seconds and loops < 1024:
        loops *= 2
    return loops


def prepare(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Rules, events and matchers for one size, checked against the naive loop."""
    rng = random.Random(args.seed * 100_003 + size)
    rules = make_rules(size, rng)
    events = make_events(rules, args.events, rng)
    start = time.perf_counter()
    matcher = Matcher(rules)
    build_ms = (time.perf_counter() - start) * 1e3
    cold = Matcher(rules, memo_limit=0)
    slow_events = events[:max(args.min_naive_events, min(len(events), args.naive_budget // size))]
    compiled = matcher.compiled
    for event in slow_events:
        expected = naive_matching(compiled, event)
        assert matcher.matching(event) == expected == cold.matching(event), event.id
    variants: dict[str, tuple[Match, Sequence[CaseEvent]]] = {
        "index": (matcher.matching, events),
        "index_cold": (cold.matching, events),
        "type_only": (type_only(matcher), slow_events),
        "naive": (lambda e: naive_matching(compiled, e), slow_events),
    }
    return {
        "rules": size,
        "build_ms": round(build_ms, 1),
        "candidates_per_event": round(
            sum(len(matcher.candidates(e)) for e in events) / len(events), 3),
        "matches_per_event": round(sum(len(matcher.matching(e)) for e in events) / len(events), 3),
        "variants": variants,
    }


def measure(prepared: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Time every (size, variant) in interleaved rounds; store median µs per event.

    Interleaving means a burst of load from other processes on a shared host
    hits all sizes alike instead of skewing the ratios between them.
    """
    loops = {(p["rules"], name): calibrate(match, events, args.min_seconds)
             for p in prepared for name, (match, events) in p["variants"].items()}
    samples: dict[tuple[int, str], list[float]] = {key: [] for key in loops}
    for _ in range(args.repeats):
        for p in prepared:
            for name, (match, events) in p["variants"].items():
                key = (p["rules"], name)
                samples[key].append(run_once(match, events, loops[key]) * 1e6)
    for p in prepared:
        for name, (_, events) in p.pop("variants").items():
            values = samples[(p["rules"], name)]
            p[name] = {"median_us": round(statistics.median(values), 3),
                       "min_us": round(min(values), 3), "max_us": round(max(values), 3),
                       "events": len(events), "loops": loops[(p["rules"], name)],
                       "repeats": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--min-seconds", type=float, default=0.03,
                        help="least duration of one timed repeat")
    parser.add_argument("--naive-budget", type=int, default=2_000_000,
                        help="naive loop: at most budget/rules events per repeat")
    parser.add_argument("--min-naive-events", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    rows = [prepare(size, args) for size in sizes]
    measure(rows, args)
    print(f"{'rules':>7} {'cand/ev':>8} {'match/ev':>9} {'naive µs':>10} {'type µs':>9} "
          f"{'cold µs':>8} {'index µs':>9} {'naive/index':>12} {'build ms':>9}")
    for row in rows:
        naive, index = row["naive"]["median_us"], row["index"]["median_us"]
        print(f"{row['rules']:>7} {row['candidates_per_event']:>8} {row['matches_per_event']:>9} "
              f"{naive:>10.2f} {row['type_only']['median_us']:>9.2f} "
              f"{row['index_cold']['median_us']:>8.3f} {index:>9.3f} "
              f"{naive / index:>12.1f} {row['build_ms']:>9}")

    first, last = rows[0], rows[-1]
    growth = last["index"]["median_us"] / first["index"]["median_us"]
    speedup = last["naive"]["median_us"] / last["index"]["median_us"]
    cold_growth = last["index_cold"]["median_us"] / first["index_cold"]["median_us"]
    ratios = {
        f"index({last['rules']})/index({first['rules']})": round(growth, 3),
        f"naive({last['rules']})/index({last['rules']})": round(speedup, 1),
        f"index_cold({last['rules']})/index_cold({first['rules']})": round(cold_growth, 3),
        f"naive({last['rules']})/index_cold({last['rules']})": round(
            last["naive"]["median_us"] / last["index_cold"]["median_us"], 1),
        "growth_target_max": TARGET_GROWTH, "speedup_target_min": TARGET_SPEEDUP,
        "targets_met": growth <= TARGET_GROWTH and speedup >= TARGET_SPEEDUP,
    }
    for name, value in ratios.items():
        print(f"{name}: {value}")
    results = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/matching.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform(), "load_avg_at_start": os.getloadavg()},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "sizes": rows,
        "ratios": ratios,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"wrote {shown}")
    return 0 if ratios["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The engine micro-benchmark on two source trees in one run: events/s of each, and the ratio.

    git worktree add /tmp/adv-old <old commit>
    PYTHONPATH=$PWD .venv/bin/python benchmarks/engine_compare.py /tmp/adv-old . \\
        --events 20000 --rounds 5 --repeats 3
    git worktree remove /tmp/adv-old

Every round runs the engine scenario of benchmarks/pipeline.py (scenario 1,
"engine: decode + process + orjson", one core, no Kafka) once per tree, in a
subprocess with PYTHONPATH set to that tree, so each tree's ``advisering``
(and its rules/ and topics/) is measured by this checkout's benchmark code on
the same synthetic stream (same seed). The trees take turns, the order
swapped every round, so on a shared host a slow stretch hits both. Printed:
each tree's best events/s per round, then NEW / OLD as the median of the
rounds' paired ratios (the figure to report) and best versus best. A ratio
of at least 1.0 means the new tree's engine is no slower.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve()


def child(args: argparse.Namespace) -> int:
    """In the subprocess: build the stream, time the engine pass, print one JSON line."""
    from harness.stats import timed  # noqa: PLC0415
    from scenarios.engine import engine_pass, load_engine  # noqa: PLC0415
    from scenarios.synthetic import build_stream  # noqa: PLC0415

    import advisering  # noqa: PLC0415 (the parent needs none of these)

    tree = Path(advisering.__file__).resolve().parents[1]
    matcher, vocabulary = load_engine(tree, "127.0.0.1:9")
    key = hashlib.sha256(f"engine-compare-{args.seed}".encode()).hexdigest().encode()
    citizens = max(10, min(args.citizens, args.events // 4))
    stream = build_stream(args.events, citizens, key, vocabulary, args.seed)
    payloads = [p.value for p in stream.events]
    found = timed({"engine": lambda: engine_pass(payloads, matcher, vocabulary)},
                  len(payloads), args.repeats)["engine"]
    print(orjson.dumps({"tree": str(tree), "rules": len(matcher.compiled), **found}).decode())
    return 0


def measure(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One engine measurement of ``tree`` in a fresh subprocess."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    argv = [sys.executable, str(HERE), "--child", "--events", str(args.events),
            "--citizens", str(args.citizens), "--repeats", str(args.repeats),
            "--seed", str(args.seed)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                          timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(f"engine run on {tree} failed:\n{done.stderr[-3000:]}")
    found: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    if Path(found["tree"]) != tree:
        raise RuntimeError(f"PYTHONPATH={tree} imported advisering from {found['tree']}")
    return found


def report(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    for name, runs in (("old", old), ("new", new)):
        rates = [r["events_per_s"] for r in runs]
        print(f"{name} {runs[0]['tree']} ({runs[0]['rules']} rules): events/s per round "
              f"{rates}; best {max(rates):,}, median {statistics.median(rates):,.0f}")
    paired = [round(n["events_per_s"] / o["events_per_s"], 3) for o, n in zip(old, new,
                                                                             strict=True)]
    best = max(r["events_per_s"] for r in new) / max(r["events_per_s"] for r in old)
    print(f"new / old = {statistics.median(paired):.3f}x (median of the rounds' pairs "
          f"{paired}; best vs best {best:.3f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("old", type=Path, nargs="?", help="source tree of the baseline")
    parser.add_argument("new", type=Path, nargs="?", help="source tree measured against it")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--citizens", type=int, default=5000,
                        help="at most this many (never more than events/4)")
    parser.add_argument("--rounds", type=int, default=5, help="subprocess runs per tree")
    parser.add_argument("--repeats", type=int, default=3,
                        help="engine passes per run; the best is kept")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.old is None or args.new is None:
        parser.error("give the two source trees: OLD NEW")
    trees = {name: path.resolve() for name, path in (("old", args.old), ("new", args.new))}
    for path in trees.values():
        if not (path / "advisering" / "__init__.py").exists():
            parser.error(f"{path} has no advisering/ package")
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for number in range(args.rounds):
        for name in ("old", "new") if number % 2 == 0 else ("new", "old"):
            runs[name].append(measure(trees[name], args))
            print(f"round {number + 1} {name}: {runs[name][-1]['events_per_s']:,} ev/s",
                  flush=True)
    report(runs["old"], runs["new"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

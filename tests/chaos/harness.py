"""One chaos run, shared by tests/chaos/test_chaos.py (short) and benchmarks/chaos.py (long).

A run starts a fresh three-node cluster, `serve` and two supervised workers,
starts the clients of the workload at a steady rate, plants the foreign
events, injects the five faults one after another (each once the bus has
recovered from the previous one), lifts the rate so the clients finish,
waits until the workers and the inbox have committed everything, and then
compares what is on the topics and in the inbox with the acknowledgements
and the oracle (:mod:`tests.chaos.checks`). It returns the findings and the
table; the caller asserts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from advisering.kafka.topics import CASE_EVENTS, NOTIFICATIONS, citizen_topic_name
from advisering.testing import group_positions, kafka_at, wait_until_idle
from tests.chaos import checks, faults, workload
from tests.chaos.load import Load
from tests.chaos.system import Ports, System, build_system

DRAIN_WAIT = 180.0  # seconds the workers and the inbox may take to commit the rest


@dataclass(frozen=True)
class Plan:
    """How big a run is: citizens simulated, clients, the posting rate, how many rounds."""

    citizens: int = 9_000
    clients: int = 4
    rate: float = 40.0  # events/s through the ingest while the faults are injected
    rounds: int = 1  # the fault sequence is injected this many times


@dataclass
class Outcome:
    """A run's result: the faults with their recovery, the findings, the problems, the table."""

    records: list[faults.FaultRecord]
    found: checks.Findings
    problems: list[str]
    seconds: float
    worker_exits: list[str] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)

    def table(self) -> str:
        """The chaos table: faults and recovery, then the run's totals."""
        lines = [f"{'fault':<15} {'injection s':>11} {'ack gap s':>9} {'caught up s':>11}  "
                 "detail"]
        lines += [f"{r.name:<15} {r.injected_s:>11.1f} {r.ack_gap_s:>9.1f} "
                  f"{r.caught_up_s:>11.1f}  {r.detail}" for r in self.records]
        f = self.found
        lines += [
            f"faults injected           {len(self.records)}",
            f"events acknowledged (202) {f.acked}",
            f"events on the topic       {f.on_topic} distinct ({f.topic_records} records; "
            f"acked but missing {len(f.acked_missing)})",
            f"notifications expected    {f.expected} (oracle; rules backtest over the topic: "
            f"{sum(f.backtest_per_rule.values())})",
            f"notifications found       {f.found} in the inbox ({f.inbox_rows} rows; "
            f"missing {len(f.missing)}, unexpected {len(f.unexpected)})",
            f"duplicated (same id)      {f.topic_duplicates} on the notifications topic, "
            f"{f.inbox_rows - f.found} in the inbox",
            f"dead letters              {sum(f.dead_letters.values())} "
            f"({dict(f.dead_letter_reasons)}; planted {len(f.dead_letters_expected)})",
            f"worker exits              {', '.join(self.worker_exits) or 'none besides faults'}",
            f"client re-sends           {self.retries or 'none'}",
            f"run took                  {self.seconds:.0f} s",
        ]
        return "\n".join(lines)


def drain(system: System) -> None:
    """Wait until the workers and the inbox have committed everything (stalls are named)."""
    wait_until_idle(kafka_at(system.bootstrap), system.app_id,
                    [CASE_EVENTS, citizen_topic_name(system.app_id)], DRAIN_WAIT)
    wait_until_idle(kafka_at(system.bootstrap), system.inbox_group, [NOTIFICATIONS], DRAIN_WAIT)


def evidence(system: System) -> str:
    """Committed against end per partition, and each worker's log tail, for a failed drain."""
    parts = [f"{topic}[{p}] committed {c}, {behind} behind" for topic, p, c, behind in
             group_positions(kafka_at(system.bootstrap), system.app_id,
                             [CASE_EVENTS, citizen_topic_name(system.app_id)])]
    logs = [f"--- worker {slot}:\n{w.log_tail(2500)}"
            for slot, w in system.workers.workers.items()]
    return "\n".join(parts + logs)


def run(plan: Plan, ports: Ports, run_dir: Path) -> Outcome:
    """One chaos run with ``plan``, on ``ports``, keeping its state and logs in ``run_dir``."""
    began = time.monotonic()
    system = build_system(ports, run_dir)
    work = workload.build(plan.citizens, plan.clients)
    expected = workload.oracle(work, system.settings)
    records: list[faults.FaultRecord] = []
    system.start()
    try:
        load = Load.of(f"http://127.0.0.1:{ports.serve}", system.keys, work.clients, plan.rate)
        load.start()
        checks.plant_direct(system, work)
        time.sleep(5)  # a steady flow before the first fault
        try:
            for _ in range(plan.rounds):
                for name, action in faults.FAULTS:
                    assert not load.errors(), load.errors()
                    records.append(faults.inject(system, load, name, action))
                    print(f"[{time.strftime('%H:%M:%S')}] {records[-1]}", flush=True)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{evidence(system)}") from exc
        load.finish(timeout=DRAIN_WAIT)
        assert not load.errors(), load.errors()
        try:
            drain(system)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{evidence(system)}") from exc
        found = checks.gather(system, load.acks.ids, expected)
        exits = [f"{e.slot} exited {e.code}" for e in system.workers.exits]
        return Outcome(records, found, checks.problems(found, expected),
                       time.monotonic() - began, exits, dict(load.acks.retries))
    finally:
        system.stop()

"""How long `advisering insight` takes for one citizen over a year of audit records.

Simulates a year of disclosures for ``--citizens`` citizens (default 100,000)
into a fresh audit store, as ``advisering audit-sink`` writes them (``--store
sqlite``, the default, a file in a temporary folder; ``--store postgresql``, a
new database on the server ``ADVISERING_TEST_PG_DSN`` names, as the tests use,
dropped afterwards):
each citizen gets a random number of disclosures (0 to ``2 * --per-citizen``,
mean ``--per-citizen``, default 5), spread over the year, from a handful of
rules, recipients and triggers. Then it times, for one citizen with a
typical number of disclosures and for the busiest one:

library   ``look_up`` (pseudonymise, query by pseudonym, build the report,
          record the lookup), median of ``--repeats`` calls, the store open;
command   ``advisering insight --cpr ...`` as a new process (Python start-up,
          settings, open the store, query, JSON), median of 3 runs.

Figures only, no timed assertions. Usage:

    .venv/bin/python benchmarks/insight.py [--citizens 100000] [--per-citizen 5]
    ADVISERING_TEST_PG_DSN=postgresql://... .venv/bin/python benchmarks/insight.py \
        --store postgresql

Writes benchmarks/results/insight-latest.json (PostgreSQL: insight-postgresql-latest.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pydantic import SecretStr

from advisering.audit.store import AuditStorage, open_audit_store
from advisering.dev.scenario import synthetic_cpr
from advisering.engine.notification import AuditRecord, Recipient, RelatedCase, Trigger
from advisering.insight.report import Asker, Period, look_up, pseudonyms_of
from advisering.pseudonyms import pseudonymise

ROOT = Path(__file__).resolve().parents[1]
KEY = b"benchmark-pseudonym-key-of-32-bytes!"
YEAR_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
RULES = [
    ("sanktion-til-boernesag", "Sanktion i jobcentret for en forælder med en åben børnesag",
     "Barnets lov (underretning og tidlig indsats)", "benefit.changed", "jobcenter"),
    ("indlaeggelse-til-hjemmepleje", "Indlæggelse af en borger med hjemmepleje",
     "Serviceloven § 83 (koordinering)", "citizen.admitted", None),
    ("udeblivelse-til-socialpsykiatri", "Udeblivelse fra samtale i jobcentret",
     "Serviceloven § 85", "appointment.missed", "jobcenter"),
    ("flytning-til-alle", "Borgeren er flyttet", "Forvaltningsloven § 7", "citizen.moved", None),
    ("ny-boernesag-orientering", "Ny børnesag hos en borger med andre åbne sager",
     "Barnets lov § 133", "case.opened", "boern-familie"),
]
RECIPIENTS = [("bf-0042", "bf-syd", "boern-familie"), ("hp-0107", "hjemmepleje-vest", "aeldre"),
              ("sp-0031", "socialpsykiatri", "handicap-psykiatri"), (None, "pps", "skole"),
              ("yd-0550", "ydelse-central", "ydelse")]


def records_for(number: int, count: int, rng: random.Random) -> list[AuditRecord]:
    """``count`` disclosures about citizen ``number`` spread over the year."""
    citizen = pseudonymise(synthetic_cpr(number), KEY)
    made = []
    for index in range(count):
        rule, title, basis, kind, department = rng.choice(RULES)
        caseworker, unit, told = rng.choice(RECIPIENTS)
        moment = YEAR_START + dt.timedelta(seconds=rng.randrange(365 * 86_400))
        when = moment.isoformat()
        case = f"SAG-{number:06d}-{index}"
        made.append(AuditRecord(
            notification_id=f"{number:06d}-{index:03d}-{rng.getrandbits(64):016x}",
            citizen=citizen, recipient=Recipient(caseworker, unit, told), rule=rule,
            legal_basis=basis, disclosed=f"Borgeren i din sag {case} ({moment:%d.%m.%Y}).",
            related_case=RelatedCase(case, "kilde", "34.15.00"),
            trigger=Trigger(f"ev-{number}-{index}", "kilde", kind, department, when),
            created=when, title=title))
    return made


def fill(store: AuditStorage, citizens: int, per_citizen: int, seed: int) -> dict[int, int]:
    """The year of records, in batches as the sink stores them; citizen -> count."""
    rng = random.Random(seed)
    counts: dict[int, int] = {}
    batch: list[AuditRecord] = []
    for number in range(citizens):
        counts[number] = rng.randint(0, 2 * per_citizen)
        batch += records_for(number, counts[number], rng)
        if len(batch) >= 5000:
            store.add_many(batch)
            batch = []
    store.add_many(batch)
    return counts


def time_library(store: AuditStorage, number: int, repeats: int) -> float:
    """Median seconds of one look_up (pseudonymise included) for citizen ``number``."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        look_up(store, pseudonyms_of(synthetic_cpr(number).replace("-", ""), KEY), Period(),
                Asker("cli"), limit=10_000)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def time_command(db: Path | SecretStr, number: int) -> float:
    """Median seconds of `advisering insight --cpr` as a new process, three runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    where = db.get_secret_value() if isinstance(db, SecretStr) else str(db)
    env.update(ADVISERING_PSEUDONYM_KEY=KEY.decode(), ADVISERING_AUDIT_DB=where,
               ADVISERING_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    times = []
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "advisering.cli", "insight", "--cpr",
                        synthetic_cpr(number)], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


@contextmanager
def sqlite_store() -> Iterator[tuple[Path | SecretStr, Path | None]]:
    """A new SQLite audit store in a temporary folder: (location, folder to measure)."""
    with tempfile.TemporaryDirectory(prefix="insight-bench-") as folder:
        yield Path(folder) / "audit.sqlite3", Path(folder)


@contextmanager
def postgres_store() -> Iterator[tuple[Path | SecretStr, Path | None]]:
    """A new database on ADVISERING_TEST_PG_DSN's server, dropped afterwards."""
    server = os.environ.get("ADVISERING_TEST_PG_DSN")
    if not server:
        raise SystemExit("--store postgresql needs ADVISERING_TEST_PG_DSN (a server URL)")
    name = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SecretStr(f"{server.rpartition('/')[0]}/{name}"), None
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_bytes(location: Path | SecretStr, folder: Path | None) -> int:
    """The store's size: the SQLite files, or the PostgreSQL database."""
    if folder is not None:
        return sum(p.stat().st_size for p in folder.iterdir())
    assert isinstance(location, SecretStr)
    with psycopg.connect(location.get_secret_value()) as db:
        row = db.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    """Fill, time, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--citizens", type=int, default=100_000)
    parser.add_argument("--per-citizen", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    with (sqlite_store() if args.store == "sqlite" else postgres_store()) as (db, folder):
        store = open_audit_store(db)
        began = time.perf_counter()
        counts = fill(store, args.citizens, args.per_citizen, args.seed)
        fill_seconds = time.perf_counter() - began
        total = sum(counts.values())
        typical = next(n for n, c in counts.items() if c == args.per_citizen)
        busiest = max(counts, key=lambda n: counts[n])
        result: dict[str, object] = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": f"{platform.node()} ({os.cpu_count()} cpus, Python "
                    f"{platform.python_version()})",
            "store": args.store, "citizens": args.citizens, "records": total,
            "fill_seconds": round(fill_seconds, 1),
            "typical": {"disclosures": counts[typical],
                        "library_ms": round(time_library(store, typical, args.repeats) * 1e3, 2),
                        "command_ms": round(time_command(db, typical) * 1e3)},
            "busiest": {"disclosures": counts[busiest],
                        "library_ms": round(time_library(store, busiest, args.repeats) * 1e3, 2),
                        "command_ms": round(time_command(db, busiest) * 1e3)},
        }
        store.close()  # SQLite: checkpoints the WAL into the file
        result["store_bytes"] = store_bytes(db, folder)
    print(json.dumps(result, indent=2))
    suffix = "" if args.store == "sqlite" else f"-{args.store}"
    out = ROOT / "benchmarks" / "results" / f"insight{suffix}-latest.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

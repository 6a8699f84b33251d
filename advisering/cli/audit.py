"""`advisering audit-sink` and `advisering insight`: the audit store, filled and asked.

`audit-sink` consumes ``advisering.audit`` into the audit store and prunes it
(its own verb, not part of `serve`: see the README, "The audit store").
`insight --cpr CPR` prints a citizen's disclosure log as JSON for the case
system or as a Danish letter (`--format html`), to stdout or `--out FILE`.
`--cpr -` reads the number from the first line of stdin, so that it is not
left in the shell's history or the process list.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from advisering.cli.errors import UserError
from advisering.settings import Settings

if TYPE_CHECKING:
    from advisering.audit.store import AuditStorage
    from advisering.insight.report import Asker


def _audit_sink(_args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import start_http_server

    from advisering.audit.sink import AuditSink
    from advisering.kafka.connection import KafkaConnection
    from advisering.log import get_logger

    log = get_logger("advisering.audit")
    if settings.audit_sink_web_port:  # first: a taken port stops the sink before it connects
        try:
            start_http_server(settings.audit_sink_web_port, addr="127.0.0.1")
        except OSError as exc:
            raise UserError(f"cannot serve metrics on 127.0.0.1:{settings.audit_sink_web_port} "
                            f"({exc.strerror}): set ADVISERING_AUDIT_SINK_WEB_PORT to a free "
                            "port, or 0 for none") from exc
    location = settings.audit_database(settings.inbox_db)
    store = _open_store(location, settings)
    sink = AuditSink(KafkaConnection.from_settings(settings), settings.audit_group, store,
                     max_record_bytes=settings.audit_max_record_bytes,
                     retention=dt.timedelta(days=settings.audit_retention_days))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("audit_sink_started", group=settings.audit_group, store=_described(location),
             retention_days=settings.audit_retention_days,
             prune_interval_seconds=settings.audit_prune_interval_seconds)
    try:
        sink.run(stop, settings.audit_prune_interval_seconds)
    finally:
        sink.close()
        store.close()
        log.info("audit_sink_stopped")
    return 0


def _described(location: Path | SecretStr) -> str:
    """The store for a log line or message: the file, or just "postgresql" (the URL is secret)."""
    return "postgresql" if isinstance(location, SecretStr) else str(location)


def _open_store(location: Path | SecretStr, settings: Settings) -> AuditStorage:
    """The audit store, or a UserError naming it (never the URL) when it cannot be opened."""
    import psycopg
    import psycopg_pool

    from advisering.audit.store import open_audit_store
    from advisering.inbox.postgres import PoolLimits

    try:
        return open_audit_store(location, PoolLimits.from_settings(settings))
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        raise UserError(f"the audit store ({_described(location)}) cannot be opened: "
                        f"{type(exc).__name__}") from exc


def _read_cpr(value: str) -> str:
    """--cpr: the value, or with ``-`` the first line of stdin (bounded)."""
    if value != "-":
        return value
    return sys.stdin.readline(64).strip()


def _operator() -> Asker:
    """Who asks at the command line: the operating system's user, recorded with the lookup."""
    from advisering.insight.report import Asker

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid-{os.getuid()}"
    return Asker("cli", caseworker=f"os:{user}"[:64])


def _write_private(path: Path, text: str) -> None:
    """The answer to ``path``, readable by its owner only (it is about a person)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _insight(args: argparse.Namespace, settings: Settings) -> int:
    from advisering import metrics
    from advisering.insight.letter import render_letter
    from advisering.insight.report import (
        InsightRequestError,
        Period,
        cpr_digits_of,
        look_up,
        parse_day,
        pseudonyms_of,
    )
    from advisering.log import get_logger

    log = get_logger("advisering.insight")
    try:
        pseudonyms = pseudonyms_of(cpr_digits_of(_read_cpr(args.cpr)),
                                   settings.pseudonym_key_bytes(),
                                   settings.previous_pseudonym_key_bytes())
        period = Period(parse_day(args.from_day, "--from") if args.from_day else None,
                        parse_day(args.to_day, "--to") if args.to_day else None)
    except InsightRequestError as exc:
        metrics.INSIGHT_LOOKUPS.labels("cli", "refused").inc()
        raise UserError(str(exc)) from None
    location = settings.audit_database(settings.inbox_db)
    if isinstance(location, Path) and not location.is_file():
        raise UserError(f"no audit store at {location}: run `advisering audit-sink` (or set "
                        "ADVISERING_AUDIT_DB to the store it fills)")
    store = _open_store(location, settings)
    try:
        report, lookup = look_up(store, pseudonyms, period, _operator(),
                                 limit=settings.insight_max_disclosures)
    finally:
        store.close()
    metrics.INSIGHT_LOOKUPS.labels("cli", "answered").inc()
    log.info("insight_lookup", lookup_id=lookup.id, via="cli", disclosures=report.count,
             truncated=report.truncated, keys=len(pseudonyms))
    text = (render_letter(report, settings.insight_sender) if args.format == "html"
            else report.model_dump_json(indent=2) + "\n")
    if args.out is None:
        sys.stdout.write(text)
    else:
        _write_private(args.out, text)
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit-sink` and `insight`."""
    sink = verbs.add_parser("audit-sink", help="consume advisering.audit into the audit store")
    sink.set_defaults(handler=_audit_sink)
    insight = verbs.add_parser(
        "insight", help="a citizen's disclosure log: every notification about them")
    insight.add_argument("--cpr", required=True, metavar="CPR",
                         help="DDMMYYXXXX or DDMMYY-XXXX; `-` reads it from stdin")
    insight.add_argument("--from", dest="from_day", metavar="DATE",
                         help="first day, YYYY-MM-DD (Danish time)")
    insight.add_argument("--to", dest="to_day", metavar="DATE",
                         help="last day, YYYY-MM-DD (inclusive)")
    insight.add_argument("--format", choices=("json", "html"), default="json",
                         help="json for the case system, html for a printable letter")
    insight.add_argument("--out", type=Path, metavar="FILE",
                         help="write here (mode 0600) instead of stdout")
    insight.set_defaults(handler=_insight)

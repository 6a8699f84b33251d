"""`advisering db migrate`: bring the inbox store's schema to this version's, and the audit's.

``serve`` migrates at start as well; the verb lets an operator do it first
(before a rolling upgrade of several replicas, or to check a database URL)
and see the version before and after. It works on both stores; the
PostgreSQL URL is never printed. When the audit store is on PostgreSQL (its
own URL, or the inbox's database) its versions are applied too and printed on
a line of their own; a SQLite audit file has no versions (its schema is
created when it is opened).
"""

from __future__ import annotations

import argparse
import asyncio

from pydantic import SecretStr

from advisering.cli.errors import UserError
from advisering.settings import Settings


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `db` verb group."""
    db = verbs.add_parser("db", help="the inbox database (ADVISERING_INBOX_DB)")
    actions = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate", help="apply the inbox schema's missing versions (serve does it at start too)")
    migrate.set_defaults(handler=_migrate)


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    import psycopg
    import psycopg_pool

    from advisering.inbox.storage import storage_for

    async def run() -> tuple[str, int, int]:
        store = storage_for(settings)
        try:
            migrated = await store.open()
        finally:
            await store.close()
        return ("postgresql" if store.shared else "sqlite"), migrated.before, migrated.after

    try:
        kind, before, after = asyncio.run(run())
    except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
        raise UserError(f"the inbox database cannot be migrated: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    where = "PostgreSQL" if kind == "postgresql" else f"SQLite {settings.inbox_sqlite_path()}"
    _say(where, before, after)
    audit = settings.audit_database(settings.inbox_db)
    if isinstance(audit, SecretStr):
        from advisering.audit.postgres import PostgresAuditStore
        from advisering.inbox.postgres import PoolLimits

        try:
            store = PostgresAuditStore(audit.get_secret_value(), PoolLimits.from_settings(settings))
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            raise UserError(f"the audit store cannot be migrated: {type(exc).__name__}") from exc
        store.close()
        _say("audit store on PostgreSQL", store.migrated.before, store.migrated.after)
    return 0


def _say(where: str, before: int, after: int) -> None:
    if before == after:
        print(f"{where}: schema version {after}, nothing to do")
    else:
        print(f"{where}: schema version {before} -> {after}")

"""`advisering db migrate`: bring the inbox store's schema to this version's.

``serve`` migrates at start as well; the verb lets an operator do it first
(before a rolling upgrade of several replicas, or to check a database URL)
and see the version before and after. It works on both stores; the
PostgreSQL URL is never printed.
"""

from __future__ import annotations

import argparse
import asyncio

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
    if before == after:
        print(f"{where}: schema version {after}, nothing to do")
    else:
        print(f"{where}: schema version {before} -> {after}")
    return 0

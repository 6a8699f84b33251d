"""`advisering serve`, `advisering sources ...` and `advisering token ...`: the HTTP side's verbs.

`sources add` registers a source system with its grants and prints its key
once; `sources add --rotate` gives a new key and keeps the old one valid for
a grace period; `sources grant` changes what a source may publish; `sources
revoke` removes it; `sources list` shows each source's grants, key age and
pending rotations, never a key or a hash. `token issue` signs a caseworker
token (with a new random ``jti``, printed to stderr for a later `token
revoke`; `--role insight` lets it ask citizens' disclosure logs); `token
revoke JTI` adds the id to the revocation file that serve rereads without a
restart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from advisering.cli.errors import UserError
from advisering.events import Vocabulary
from advisering.grants import Grants, parse_list
from advisering.inbox.tokens import ROLES
from advisering.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """One serve process; or, with ADVISERING_SERVE_PROCESSES > 1, the parent of several."""
    from advisering.http.headers import ServeTlsError, server_ssl_context

    try:  # a bad certificate or key stops serve here, before anything listens
        server_ssl_context(settings.serve_tls_cert_file, settings.serve_tls_key_file)
    except ServeTlsError as exc:
        raise UserError(str(exc)) from exc
    if args.as_process is None and settings.serve_processes > 1:
        from advisering.http.processes import ServeSetupError, run_processes

        try:
            return run_processes(settings)
        except ServeSetupError as exc:
            raise UserError(str(exc)) from exc
    from advisering.http.server import run_server
    from advisering.kafka.clients import configure_client_logging

    configure_client_logging(settings.kafka_log_interval)
    return run_server(settings, args.as_process, args.metrics_dir)


def _grants_from(args: argparse.Namespace, *, required: bool) -> Grants | None:
    """The --types/--departments of a verb as Grants (None when neither is given)."""
    types, departments = parse_list(args.types), parse_list(args.departments)
    if not types and not departments:
        if required:
            raise UserError("give what the source may publish: --types T,... (exact types "
                            "or families such as case.*) and --departments D,...")
        return None
    try:
        return Grants(types=types, departments=departments)
    except ValidationError as exc:
        raise UserError("; ".join(e["msg"].removeprefix("Value error, ")
                                  for e in exc.errors())) from exc


def _vocabulary(settings: Settings) -> Vocabulary:
    from advisering.kafka.topics import default_vocabulary

    return default_vocabulary(settings.topics_dir)


def _grace(value: str) -> dt.timedelta:
    """--grace: an ISO 8601 duration (PT24H, P1D, PT0S), 0 .. 30 days."""
    try:
        grace = TypeAdapter(dt.timedelta).validate_python(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(
            "an ISO 8601 duration such as PT24H, P1D or PT0S (no grace)") from exc
    if not dt.timedelta(0) <= grace <= dt.timedelta(days=30):
        raise argparse.ArgumentTypeError("between PT0S and P30D")
    return grace


def _sources_add(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.http.sources import add_source, rotate_key

    path = settings.sources_file
    grace = args.grace if args.grace is not None else settings.sources_rotation_grace
    try:
        if args.rotate:
            key = rotate_key(path, args.name, grace=grace,
                             grants=_grants_from(args, required=False),
                             vocabulary=_vocabulary(settings))
        else:
            grants = _grants_from(args, required=True)
            assert grants is not None
            key = add_source(path, args.name, grants, description=args.description,
                             vocabulary=_vocabulary(settings))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.rotate:
        print(f"Source {args.name!r} has a new API key in {path}.")
        if grace > dt.timedelta(0):
            print(f"Its previous key stays valid for {_age(grace)} (until "
                  f"{(dt.datetime.now(dt.UTC) + grace):%Y-%m-%d %H:%M} UTC); "
                  "`advisering sources revoke` ends every key at once.")
        else:
            print("Its previous key is no longer valid.")
    else:
        print(f"Source {args.name!r} registered in {path}.")
    print("Its API key (shown only now; store it in the source system's secret store):")
    print(key)
    return 0


def _sources_grant(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.http.sources import set_grants

    grants = _grants_from(args, required=True)
    assert grants is not None
    try:
        set_grants(settings.sources_file, args.name, grants, vocabulary=_vocabulary(settings))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(f"Source {args.name!r} may now publish {grants.describe()} (its key is unchanged).")
    return 0


def _sources_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.http.sources import revoke_source

    try:
        revoke_source(settings.sources_file, args.name)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(f"Source {args.name!r} and all its keys are removed from {settings.sources_file}; "
          "serve and the worker refuse it from their next check "
          f"(within {settings.sources_reload_seconds:g} s).")
    return 0


def _sources_list(_args: argparse.Namespace, settings: Settings) -> int:
    from advisering.http.sources import describe, load_sources, utc_now

    path = settings.sources_file
    if not path.exists():
        print(f"{path}: no sources registered (the file does not exist).")
        return 0
    now = utc_now()
    rows = describe(load_sources(path), now)
    if not rows:
        print(f"{path}: no sources registered.")
    for row in rows:
        grants = row.grants
        what = grants.describe() if grants is not None and not grants.is_empty() else (
            "NO GRANTS: every event is refused (not_granted); "
            "run `advisering sources grant NAME --types ... --departments ...`")
        print(f"{row.name}: {what}")
        rotation = (", ".join(f"previous key valid until {p:%Y-%m-%d %H:%M} UTC"
                              for p in row.pending) if row.pending else "no rotation pending")
        print(f"    key age {_age(row.key_age)}; {rotation}"
              + (f"; {row.description}" if row.description else ""))
    return 0


def _age(age: dt.timedelta) -> str:
    seconds = max(int(age.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"



def _grant_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_argument_group("grants", what)
    group.add_argument("--types", default=None,
                       help="comma-separated event types or families: case.opened,case.*; "
                            "citizen.* only for registries")
    group.add_argument("--departments", default=None,
                       help="comma-separated departments whose cases it may publish")


def _hours(value: str) -> float:
    """--hours: a positive number of hours (the maximum lifetime is checked when signing)."""
    try:
        hours = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a number of hours, such as 8 or 0.5") from None
    if not 0 < hours < 10_000:
        raise argparse.ArgumentTypeError("a positive number of hours")
    return hours


def _token_issue(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.inbox import tokens

    secret = settings.token_secret_bytes()
    if secret is None:
        raise UserError("ADVISERING_TOKEN_SECRET is not set; the inbox signs tokens with it "
                        "(at least 32 bytes, for example: openssl rand -hex 32).")
    jti = tokens.new_jti()
    try:
        token = tokens.issue(secret, args.caseworker, args.department, args.unit,
                             policy=tokens.TokenPolicy.from_settings(settings),
                             lifetime=round(args.hours * 3600), jti=jti,
                             roles=tuple(args.role or ()))
    except tokens.TokenError as exc:
        raise UserError(str(exc)) from exc
    print(token)
    print(f"token id (jti, for `advisering token revoke`): {jti}", file=sys.stderr)
    return 0


def _token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.inbox.revocation import RevocationFileError, revocation_file, revoke

    path = revocation_file(settings.token_revocation_file, settings.inbox_sqlite_path())
    try:
        added = revoke(path, args.jti, args.reason,
                       max_bytes=settings.token_revocation_max_bytes,
                       max_entries=settings.token_revocation_max_entries)
    except (OSError, RevocationFileError) as exc:
        raise UserError(f"{path}: {exc}") from exc
    if not added:
        print(f"Token {args.jti} was revoked already ({path}).")
        return 0
    print(f"Token {args.jti} is revoked in {path}; serve refuses it and closes its live "
          f"streams from its next check (within {settings.token_revocation_check_seconds:g} s).")
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the HTTP side's verbs: `serve`, `sources` and `token`."""
    serve = verbs.add_parser("serve", help="HTTP ingest for source systems and the inbox")
    # Set by the parent of several serve processes for each child (not for people).
    serve.add_argument("--as-process", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--metrics-dir", type=Path, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)
    sources = verbs.add_parser("sources", help="source systems: API keys and grants")
    actions = sources.add_subparsers(dest="sources_verb", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register a source and print its new API key once")
    add.add_argument("name", help="the source name its events carry in `source`")
    _grant_options(add, "what it may publish (required unless --rotate)")
    add.add_argument("--description", default=None)
    add.add_argument("--rotate", action="store_true",
                     help="a new key for an existing source; the old one stays valid for "
                          "the grace period")
    add.add_argument("--grace", type=_grace, default=None,
                     help="with --rotate: how long the old key stays valid, ISO 8601 "
                          "(default ADVISERING_SOURCES_ROTATION_GRACE, PT24H; PT0S: not at all)")
    add.set_defaults(handler=_sources_add)
    grant = actions.add_parser("grant", help="replace what a source may publish (same key)")
    grant.add_argument("name")
    _grant_options(grant, "what it may publish from now on (replaces its grants)")
    grant.set_defaults(handler=_sources_grant)
    revoke = actions.add_parser("revoke", help="remove a source and all its keys, at once")
    revoke.add_argument("name")
    revoke.set_defaults(handler=_sources_revoke)
    listing = actions.add_parser("list", help="sources, their grants, key age, rotations")
    listing.set_defaults(handler=_sources_list)
    token = verbs.add_parser("token", help="bearer tokens for the caseworker inbox")
    token_actions = token.add_subparsers(dest="token_verb", required=True, metavar="ACTION")
    issue = token_actions.add_parser("issue", help="a signed caseworker token")
    issue.add_argument("--caseworker", required=True,
                       help="the caseworker id in the source system (token subject)")
    issue.add_argument("--department", required=True,
                       help="their department: the caseworker id is unique only within it")
    issue.add_argument("--unit", default=None, help="their unit: they also see its notifications")
    issue.add_argument("--hours", type=_hours, default=8.0,
                       help="lifetime (default 8; at most ADVISERING_TOKEN_MAX_LIFETIME_SECONDS)")
    issue.add_argument("--role", action="append", choices=ROLES,
                       help="a role beyond the caseworker's own: insight may ask citizens' "
                       "disclosure logs (POST /api/v1/insight); repeatable")
    issue.set_defaults(handler=_token_issue)
    revoke = token_actions.add_parser("revoke", help="refuse a token from now on, by its jti")
    revoke.add_argument("jti", help="the token id `token issue` printed (the token's jti)")
    revoke.add_argument("--reason", default=None, help="why, for the record (200 characters)")
    revoke.set_defaults(handler=_token_revoke)

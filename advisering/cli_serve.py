"""`advisering serve` and `advisering sources add`: the HTTP side's verbs."""

from __future__ import annotations

import argparse

from advisering.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.web.server import run_server  # noqa: PLC0415

    return run_server(settings)


def _sources_add(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.cli import UserError  # noqa: PLC0415
    from advisering.web.sources import add_source  # noqa: PLC0415

    try:
        key = add_source(settings.sources_file, args.name, args.description, replace=args.rotate)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(f"Source {args.name!r} registered in {settings.sources_file}.")
    print("Its API key (shown only now; store it in the source system's secret store):")
    print(key)
    return 0


def _token_issue(args: argparse.Namespace, settings: Settings) -> int:
    from advisering.cli import UserError  # noqa: PLC0415
    from advisering.inbox import tokens  # noqa: PLC0415

    secret = settings.token_secret_bytes()
    if secret is None:
        raise UserError("ADVISERING_TOKEN_SECRET is not set; the inbox signs tokens with it "
                        "(at least 32 bytes, for example: openssl rand -hex 32).")
    try:
        print(tokens.issue(secret, args.caseworker, args.unit, lifetime=int(args.hours * 3600)))
    except tokens.TokenError as exc:
        raise UserError(str(exc)) from exc
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = verbs.add_parser("serve", help="HTTP ingest for source systems and the inbox")
    serve.set_defaults(handler=_serve)
    sources = verbs.add_parser("sources", help="source systems allowed to use HTTP ingest")
    actions = sources.add_subparsers(dest="sources_verb", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register a source and print its new API key once")
    add.add_argument("name", help="the source name its events carry in `source`")
    add.add_argument("--description", default=None)
    add.add_argument("--rotate", action="store_true", help="replace the key of an existing source")
    add.set_defaults(handler=_sources_add)
    token = verbs.add_parser("token", help="bearer tokens for the caseworker inbox")
    token_actions = token.add_subparsers(dest="token_verb", required=True, metavar="ACTION")
    issue = token_actions.add_parser("issue", help="a signed token for development")
    issue.add_argument("--caseworker", required=True, help="the caseworker id (token subject)")
    issue.add_argument("--unit", default=None, help="their unit: they also see its notifications")
    issue.add_argument("--hours", type=float, default=8.0, help="lifetime (default 8)")
    issue.set_defaults(handler=_token_issue)

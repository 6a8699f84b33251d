"""A throwaway local PostgreSQL cluster for the tests: initdb, start on its own port, stop.

Debian's ``postgresql`` package puts ``initdb`` and ``pg_ctl`` under
``/usr/lib/postgresql/<version>/bin``; they are found there or on PATH.
PostgreSQL refuses to run as root, so as root (CI) the cluster is made and
run as the ``postgres`` system user (else ``nobody``), in a folder it owns.
The cluster trusts local connections of its one user ``advisering``: it
listens on 127.0.0.1 only and lives as long as a test run.

``python -m advisering.dev.local_postgres start --port P --dir D`` prints the
server's URL; ``stop --dir D`` stops it (scripts/test.sh does both).
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

USER = "advisering"
RUN_AS = ("postgres", "nobody")


def binary(name: str) -> str | None:
    """``initdb``/``pg_ctl``: on PATH, else the newest Debian install; None when missing."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def available() -> bool:
    """Whether initdb and pg_ctl are installed."""
    return binary("initdb") is not None and binary("pg_ctl") is not None


def _as_owner(root: Path, command: list[str]) -> list[str]:
    """``command`` as the unprivileged owner of ``root`` when we are root, else as we are."""
    if os.geteuid() != 0:
        return command
    for name in RUN_AS:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        for path in [root, *root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        return ["runuser", "-u", name, "--", *command]
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run "
                       "PostgreSQL as")


def url(port: int, database: str = "postgres") -> str:
    """The URL of the local cluster's database."""
    return f"postgresql://{USER}@127.0.0.1:{port}/{database}"


def start(port: int, root: Path) -> str:
    """A fresh cluster in ``root`` (wiped first) on ``port``; returns its URL."""
    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("PostgreSQL is not installed (initdb, pg_ctl); "
                           "Debian: apt-get install postgresql")
    if (root / "data" / "postmaster.pid").exists():
        stop(root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, mode=0o700)
    data = root / "data"
    subprocess.run(_as_owner(root, [initdb, "-D", str(data), "-U", USER, "--auth=trust",
                                    "-E", "UTF8", "--locale=C"]),
                   check=True, stdout=subprocess.DEVNULL, cwd="/")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(_as_owner(root, [pg_ctl, "-D", str(data), "-o", options,
                                    "-l", str(root / "server.log"), "-w", "-t", "60", "start"]),
                   check=True, stdout=subprocess.DEVNULL, cwd="/")
    return url(port)


def stop(root: Path) -> None:
    """Stop the cluster in ``root`` (fast: open sessions are ended); quiet when none runs."""
    pg_ctl = binary("pg_ctl")
    data = root / "data"
    if pg_ctl is None or not (data / "postmaster.pid").exists():
        return
    subprocess.run(_as_owner(root, [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                   check=False, stdout=subprocess.DEVNULL, cwd="/")


def main(argv: list[str] | None = None) -> int:
    """``start --port P --dir D`` (prints the URL) or ``stop --dir D``."""
    parser = argparse.ArgumentParser(prog="python -m advisering.dev.local_postgres")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--port", type=int, default=19432)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.action == "start":
        print(start(args.port, args.dir))  # noqa: T201 - the URL, for scripts/test.sh
    else:
        stop(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

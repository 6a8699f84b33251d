"""The exact versions the container image installs, taken from a tested environment.

The image must run what the tests ran, not whatever PyPI serves on the day it
is built, so ``constraints.txt`` pins every distribution the package needs at
run time (its dependencies and the ``rocksdb`` extra, followed through their
own requirements). ``python -m advisering.dev.image_pins > constraints.txt``
rewrites it from the environment this Python runs in (CI's venv after `make
install`); ``tests/unit/test_image_files.py`` checks that every pin still
satisfies ``pyproject.toml``.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

from packaging.requirements import Requirement

#: The extras the image installs (the Helm chart's worker uses RocksDB).
IMAGE_EXTRAS = ("rocksdb",)

HEADER = """\
# The exact versions the container image installs (Containerfile), as tested.
# Rewrite from CI's venv: python -m advisering.dev.image_pins > constraints.txt
"""


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares it (``PyYAML`` = ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(requirement: Requirement, extras: tuple[str, ...]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def closure(root: str = "advisering", extras: tuple[str, ...] = IMAGE_EXTRAS) -> dict[str, str]:
    """Every installed distribution ``root[extras]`` needs, name -> installed version."""
    found: dict[str, str] = {}
    pending = [(root, extras)]
    visited: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        name, wanted_extras = pending.pop()
        if (canonical(name), wanted_extras) in visited:
            continue
        visited.add((canonical(name), wanted_extras))
        dist = metadata.distribution(name)
        found[dist.metadata["Name"]] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if _wanted(requirement, wanted_extras):
                pending.append((requirement.name, tuple(sorted(requirement.extras))))
    found.pop(metadata.distribution(root).metadata["Name"], None)
    return found


def render(pins: dict[str, str]) -> str:
    """The constraints file: the header, then one ``name==version`` a line, sorted."""
    ordered = sorted(pins.items(), key=lambda pin: canonical(pin[0]))
    lines = [f"{name}=={version}" for name, version in ordered]
    return HEADER + "\n".join(lines) + "\n"


def main() -> int:
    """Print the constraints file for the environment this Python runs in."""
    sys.stdout.write(render(closure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

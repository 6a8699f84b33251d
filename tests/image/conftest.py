"""Tests of the container image that scripts/image.sh built; they fail, never skip, without it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE_ENV = ROOT / "build" / "image" / "image.env"
CONTAINERS_CONF = ROOT / "scripts" / "containers.conf"


@dataclass(frozen=True)
class BuiltImage:
    """What scripts/image.sh left in build/image/image.env: the local image and its archive."""

    ref: str
    image_id: str
    archive: Path


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run podman with the project's containers.conf (runc, ulimits this machine allows)."""
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(["podman", *args], capture_output=True, text=True, env=env,
                            timeout=240, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="session")
def built_image() -> BuiltImage:
    """The image scripts/image.sh built, or a failed test saying how to build it."""
    if shutil.which("podman") is None or not IMAGE_ENV.is_file():
        pytest.fail("No container image: build it with scripts/image.sh "
                    "(scripts/test.sh, i.e. make test, does this first).")
    values = dict(line.split("=", 1) for line in IMAGE_ENV.read_text().splitlines() if "=" in line)
    image = BuiltImage(values["IMAGE"], values["IMAGE_ID"], Path(values["ARCHIVE"]))
    found = podman("image", "inspect", "--format", "{{.Id}}", image.ref, check=False)
    if found.returncode != 0 or not image.image_id.endswith(found.stdout.strip()):
        pytest.fail(f"{image.ref} in podman's storage is not the image scripts/image.sh "
                    "last built: run scripts/image.sh again.")
    return image


@pytest.fixture(scope="session")
def image_tree(built_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The image's whole filesystem as one tar (`podman export` of a container made from it)."""
    tar = tmp_path_factory.mktemp("image") / "rootfs.tar"
    container = podman("create", built_image.ref).stdout.strip()
    try:
        podman("export", "--output", str(tar), container)
    finally:
        podman("rm", container)
    yield tar
    tar.unlink()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/image/" in str(item.fspath):
            item.add_marker(pytest.mark.image)

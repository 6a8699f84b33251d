"""The image's inputs agree with pyproject, and the image tests' checks can fail."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from advisering import __version__
from advisering.cli.main import main
from advisering.dev.image_pins import IMAGE_EXTRAS, canonical
from tests.image.scan import Finding, detector_findings, plain_findings
from tests.image.test_image import BUILD_PACKAGES, BUILD_TOOLS

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonical(name): version for name, version in pairs}


def test_constraints_pin_every_dependency_within_pyproject() -> None:
    """constraints.txt pins each runtime dependency (and the image's extras) inside its range."""
    pins = _pins()
    wanted = list(PROJECT["dependencies"])
    for extra in IMAGE_EXTRAS:
        wanted += PROJECT["optional-dependencies"][extra]
    for line in wanted:
        requirement = Requirement(line)
        version = pins.get(canonical(requirement.name))
        assert version is not None, f"{requirement.name} has no pin in constraints.txt"
        assert requirement.specifier.contains(version), f"{requirement.name}=={version}"


def test_containerfile_label_defaults_follow_pyproject() -> None:
    """The Containerfile's default version and licence labels are pyproject's."""
    text = (ROOT / "Containerfile").read_text()
    assert f"ARG VERSION={PROJECT['version']}\n" in text
    assert f"ARG LICENSES={PROJECT['license']}\n" in text
    assert __version__ == PROJECT["version"]


def test_cli_prints_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`advisering --version` prints the package version and exits 0."""
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"advisering {PROJECT['version']}\n"


def test_containerignore_admits_what_the_containerfile_copies() -> None:
    """Every path the Containerfile copies from the context is let through .containerignore."""
    admitted = set(re.findall(r"^!(\S+?)/?$", (ROOT / ".containerignore").read_text(), re.M))
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Containerfile").read_text(), re.M)
    copied = {path.rstrip("/") for line in copies for path in line.split()}
    assert copied <= admitted


def test_plain_scan_finds_cpr_as_data_writes_it() -> None:
    """The whole-image scan finds ddmmyy-ssss forms and passes digests and versions by."""
    synthetic = "0101901234"  # 1 January 1990: a valid date, so CPR-shaped
    text = f"cpr: {synthetic}\nalso 010190-1234 and 01.01.90-1234\n".encode()
    assert [f.value for f in plain_findings("f", text)] == [
        synthetic, "010190-1234", "01.01.90-1234"]
    binary = b"\0\x01\x7f" + synthetic.encode() + b"\0"
    assert list(plain_findings("b", binary)) == [Finding("b", synthetic)]
    innocent = f"md5 a{synthetic}f version 2.{synthetic} path /x/{synthetic}".encode()
    assert list(plain_findings("i", innocent)) == []


def test_detector_scan_finds_disguises() -> None:
    """The project-file scan finds a percent-encoded CPR number, in text and in a binary."""
    disguised = b"id=%30%31%30%31%39%30%31%32%33%34"
    assert len(list(detector_findings("t", disguised + b"\n"))) == 1
    assert len(list(detector_findings("b", b"\0\0" + disguised + b"\0"))) == 1


@pytest.mark.parametrize("name", [
    "usr/bin/gcc-12", "usr/bin/cc", "usr/bin/g++", "usr/bin/x86_64-linux-gnu-gcc-12",
    "usr/bin/ld", "usr/bin/make", "opt/v/bin/pip3",
    "opt/v/lib/python3.11/site-packages/pip/__init__.py",
    "opt/v/lib/python3.11/site-packages/setuptools-65.5.0.dist-info/RECORD",
    "var/cache/apt/archives/python3_3.11.deb",
    "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
])
def test_build_tool_check_flags(name: str) -> None:
    """The image test's pattern flags compilers, pip, setuptools and apt caches."""
    assert BUILD_TOOLS.search(name)


@pytest.mark.parametrize("name", [
    "usr/sbin/ldconfig", "usr/bin/ldd", "opt/v/bin/python3.11", "usr/bin/cat",
    "var/lib/apt/lists/lock", "usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
])
def test_build_tool_check_passes_runtime_files(name: str) -> None:
    """The image test's pattern leaves the runtime's own files alone."""
    assert not BUILD_TOOLS.search(name)


def test_build_package_check() -> None:
    """dpkg packages of a toolchain are flagged; the runtime's are not."""
    assert all(BUILD_PACKAGES.match(p) for p in ("gcc-12", "libc6-dev", "python3-pip", "make"))
    assert not any(BUILD_PACKAGES.match(p) for p in ("python3", "libgcc-s1", "python3.11"))

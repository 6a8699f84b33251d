"""The built container image: it runs, as whom, with what, and holds no CPR-shaped data."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import tomllib
from pathlib import Path

from tests.image.conftest import ROOT, BuiltImage, podman
from tests.image.scan import Finding, detector_findings, plain_findings, scan

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SITE = "opt/advisering/venv/lib/python3.11/site-packages/"

#: CPR-shaped values that are configuration, not data, each with its reason. The
#: test also fails when one is no longer found, so the list cannot go stale.
ALLOWED = {
    Finding("opt/advisering/topics/dead-letters.yaml", "1209600000"):
        "retention.ms of 14 days (the worker and the hook job read topics/)",
}


def run(built: BuiltImage, *args: str, entrypoint: str | None = None) -> str:
    """Run the image as the chart does (read-only root, its own UID) and return stdout."""
    options = ["--entrypoint", entrypoint] if entrypoint else []
    return podman("run", "--rm", "--read-only", "--network", "none", *options,
                  built.ref, *args).stdout


def test_archive_holds_the_built_image(built_image: BuiltImage) -> None:
    """The OCI archive's manifest names the config of the image the tests run."""
    with tarfile.open(built_image.archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))  # type: ignore[arg-type]
    assert manifest["config"]["digest"] == built_image.image_id


def test_labels_come_from_pyproject(built_image: BuiltImage) -> None:
    """The OCI labels carry pyproject's version and licence, a source key and the commit."""
    labels = podman("image", "inspect", "--format", "{{json .Labels}}", built_image.ref).stdout
    found = json.loads(labels)
    assert found["org.opencontainers.image.version"] == PROJECT["version"]
    assert found["org.opencontainers.image.licenses"] == PROJECT["license"]
    assert "org.opencontainers.image.source" in found
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert found["org.opencontainers.image.revision"] == head


def test_version_inside(built_image: BuiltImage) -> None:
    """`advisering --version` in the image prints pyproject's version."""
    assert run(built_image, "--version").strip() == f"advisering {PROJECT['version']}"


def test_rules_validate_inside(built_image: BuiltImage) -> None:
    """`advisering rules validate` in the image checks every shipped rule, with no problems."""
    count = len(list((ROOT / "rules").glob("*.yaml")))
    output = run(built_image, "rules", "validate")
    assert f"{count} rules in {count} files, no problems." in output


def test_runs_as_numeric_non_root(built_image: BuiltImage) -> None:
    """The image's user is the numeric UID:GID 10001:10001, and processes run as it."""
    assert podman("image", "inspect", "--format", "{{.User}}", built_image.ref
                  ).stdout.strip() == "10001:10001"
    ids = run(built_image, "-c", "import os; print(os.getuid(), os.getgid())",
              entrypoint="python3")
    assert ids.split() == ["10001", "10001"]


WRITE_CHECK = """
import pathlib
from advisering.settings import Settings
s = Settings()
for d in (s.worker_data_dir, s.inbox_db.parent, s.kafka_cache_dir, s.demo_dir):
    d.mkdir(parents=True, exist_ok=True)
    (d / "probe").write_text("ok")
try:
    pathlib.Path("/opt/advisering/probe").write_text("no")
except OSError:
    print("root read-only")
print(s.rules_dir, s.topics_dir)
"""


def test_read_only_root_writes_only_below_tmp(built_image: BuiltImage) -> None:
    """With a read-only root, every state path the settings default to is writable (/tmp)."""
    output = run(built_image, "-c", WRITE_CHECK, entrypoint="python3").splitlines()
    assert output == ["root read-only", "/opt/advisering/rules /opt/advisering/topics"]


PROCESS_CHECK = """
import rocksdict
import advisering.http.server, advisering.kafka.apply, advisering.rulebook.deploy
import advisering.worker.app
from advisering.settings import Settings
s = Settings()
db = rocksdict.Rdict(str(s.worker_data_dir / "probe.rocksdb"))
db["k"] = "v"
print(db["k"], s.serve_host, s.worker_web_host)
db.close()
"""


def test_every_process_kind_loads(built_image: BuiltImage) -> None:
    """Worker, serve and hook-job code import, and a RocksDB store opens in the data dir."""
    output = run(built_image, "-c", PROCESS_CHECK, entrypoint="python3")
    assert output.split() == ["v", "0.0.0.0", "0.0.0.0"]


BUILD_TOOLS = re.compile(
    r"(^|/)(s?bin)/([a-z0-9_]+-linux-gnu-)?(gcc|cc|c\+\+|g\+\+|cpp|clang|clang\+\+|ld|as|make|pip[0-9.]*)"
    r"(-[0-9.]+)?$"
    r"|(^|/)site-packages/(pip|setuptools|wheel)(-[^/]*\.dist-info)?/"
    r"|^var/cache/apt/.+\.(bin|deb)$|^var/lib/apt/lists/[^/]+_"
)
BUILD_PACKAGES = re.compile(
    r"^(build-essential|gcc(-[0-9]+)?|g\+\+(-[0-9]+)?|cpp(-[0-9]+)?|clang.*|binutils.*|make"
    r"|libc6-dev|python3(\.[0-9]+)?-(dev|pip|venv|setuptools|wheel))$"
)


def test_no_compiler_or_build_tools(image_tree: Path) -> None:
    """The runtime holds no compiler, linker, pip, setuptools, dev package or apt cache."""
    names: list[str] = []
    status = ""
    with tarfile.open(image_tree, mode="r|") as tar:
        for member in tar:
            names.append(member.name)
            handle = tar.extractfile(member) if member.name == "var/lib/dpkg/status" else None
            status = handle.read().decode() if handle is not None else status
    assert [name for name in names if BUILD_TOOLS.search(name)] == []
    packages = re.findall(r"^Package: (\S+)", status, flags=re.MULTILINE)
    assert "python3" in packages
    assert [package for package in packages if BUILD_PACKAGES.match(package)] == []


def test_build_secrets_stay_out(image_tree: Path, built_image: BuiltImage) -> None:
    """pip's CA bundle and settings (build secrets) are in no file and no label of the image."""
    with tarfile.open(image_tree, mode="r|") as tar:
        names = [member.name for member in tar]
    assert [name for name in names if name.startswith("run/secrets/")
            or name.endswith(("/pip.conf", "/pipconf", "/pipca"))] == []
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", built_image.ref)
    assert "BEGIN CERTIFICATE" not in history.stdout
    assert "index-url" not in history.stdout


def project_file(name: str) -> bool:
    """The files the project itself puts into the image."""
    return name.startswith(("opt/advisering/rules/", "opt/advisering/topics/",
                            f"{SITE}advisering/", f"{SITE}advisering-"))


def test_no_cpr_shaped_data_anywhere(image_tree: Path) -> None:
    """No file in the image holds a CPR number as data writes one (ddmmyy-ssss and kin)."""
    scanned, findings = scan(image_tree, plain_findings, lambda _name: True)
    assert scanned > 1000
    unexpected = [finding for finding in findings if finding not in ALLOWED]
    assert unexpected == []
    assert set(findings) == set(ALLOWED)


def test_no_cpr_in_any_disguise_in_project_files(image_tree: Path) -> None:
    """The package, rules and topics in the image hold no CPR number in any disguise."""
    scanned, findings = scan(image_tree, detector_findings, project_file)
    assert scanned > 100
    assert [finding for finding in findings if finding not in ALLOWED] == []
    assert set(findings) == set(ALLOWED)

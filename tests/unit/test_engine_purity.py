"""The engine is pure: it, the event model, privacy and the edge load neither Kafka nor Faust."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE_DIR = ROOT / "advisering" / "engine"
FORBIDDEN = ("faust", "mode", "aiokafka", "confluent_kafka")
PURE_MODULES = (
    "advisering.engine.evaluate",
    "advisering.engine.explain",
    "advisering.engine.matcher",
    "advisering.engine.overview",
    "advisering.engine.rules",
    "advisering.events",
    "advisering.privacy",
    "advisering.edge.prepare",
)

PROBE = textwrap.dedent("""
    import importlib, json, sys
    modules, forbidden = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    for name in modules:
        importlib.import_module(name)
    print(json.dumps({
        "imported": sorted(name for name in modules if name in sys.modules),
        "forbidden": sorted(name for name in sys.modules
                            if name.partition(".")[0] in forbidden),
    }))
""")


def loaded_by(modules: tuple[str, ...]) -> dict[str, list[str]]:
    """What a fresh interpreter has in sys.modules after importing ``modules``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules), json.dumps(FORBIDDEN)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_pure_modules_import_neither_kafka_nor_faust() -> None:
    """Importing the engine, events, privacy and edge in a fresh process loads no Kafka/Faust."""
    loaded = loaded_by(PURE_MODULES)
    assert loaded["imported"] == sorted(PURE_MODULES)
    assert loaded["forbidden"] == []


def test_probe_sees_faust_when_the_worker_is_imported() -> None:
    """The probe is not blind: importing the worker app does show faust and mode."""
    forbidden = set(loaded_by(("advisering.worker.app",))["forbidden"])
    assert {"faust", "mode"} <= forbidden


def forbidden_imports(source: str) -> list[str]:
    """Names of Kafka/Faust modules that ``source`` imports, statically or by name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) in {"__import__", "import_module"})):
            names = [node.args[0].value]
        found.extend(name for name in names if name.partition(".")[0] in FORBIDDEN)
    return found


def engine_files() -> list[Path]:
    files = sorted(ENGINE_DIR.rglob("*.py"))
    assert {path.stem for path in files} >= {"evaluate", "matcher", "overview", "rules"}
    return files


@pytest.mark.parametrize("path", engine_files(), ids=lambda path: path.name)
def test_engine_source_has_no_kafka_or_faust_import(path: Path) -> None:
    """No file under advisering/engine/ imports faust, mode, aiokafka or confluent_kafka."""
    assert forbidden_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import faust",
        "import mode.utils.objects",
        "from aiokafka import AIOKafkaConsumer",
        "from confluent_kafka.admin import AdminClient",
        "def f():\n    import faust.types\n",
        "import importlib\nimportlib.import_module('confluent_kafka')",
        "__import__('aiokafka')",
    ],
)
def test_static_check_catches_forbidden_imports(source: str) -> None:
    """The static check flags each way of importing a forbidden package."""
    assert forbidden_imports(source) != []


def test_static_check_allows_lookalike_names() -> None:
    """Names that merely start like a forbidden package (model, faustian) are allowed."""
    assert forbidden_imports("import model\nfrom faustian import x\nimport modelling") == []

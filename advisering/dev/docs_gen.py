"""The generated tables of the docs: settings from ``Settings``, metrics from ``metrics.py``.

The code is the one source of truth; the Markdown holds a copy between
``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->`` so
it reads well on GitHub. ``python -m advisering.dev.docs_gen`` rewrites the
copies, ``--check`` only says whether they are current (a unit test runs
the same check).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic.fields import FieldInfo

from advisering import metrics
from advisering.settings import Settings

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "python -m advisering.dev.docs_gen"
METRIC_KINDS = ("Counter", "Gauge", "Histogram", "Info")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _show_default(value: object) -> str:
    """A default as a reader would write it: home as ``~``, durations in ISO 8601."""
    if value is None or value == "":
        return "none" if value is None else "empty"
    if isinstance(value, Path):
        home = str(Path.home())
        text = str(value)
        shown = "~" + text[len(home):] if text.startswith(home) else text
    elif isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        shown = f"PT{seconds // 3600}H" if seconds % 3600 == 0 else f"PT{seconds}S"
    elif isinstance(value, float) and value.is_integer():
        shown = str(int(value))
    elif isinstance(value, dict):
        shown = json.dumps(value)
    else:
        shown = str(value)
    return f"`{shown}`"


def _default_of(field: FieldInfo) -> object:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def settings_table() -> str:
    """Every setting as a row: its variable, its default and its description."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = _show_default(_default_of(field))
        rows.append(
            f"| `{prefix}{name.upper()}` | {_cell(default)} "
            f"| {_cell(field.description or '')} |"
        )
    return "\n".join(rows)


def _metric_rows(source: str) -> list[tuple[str, str, str, str]]:
    """(name, kind, labels, help) of every metric declared at module level in ``source``."""
    rows = []
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        kind = call.func.id if isinstance(call.func, ast.Name) else ""
        if kind not in METRIC_KINDS:
            continue
        args = [ast.literal_eval(arg) for arg in call.args[:3]]
        keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        name, help_text = args[0], args[1]
        labels = args[2] if len(args) > 2 else keywords.get("labelnames", [])
        if kind == "Info":
            name += "_info"  # the exposed gauge; its labels are the info's keys
        rows.append((name, kind.lower(), ", ".join(labels), help_text))
    return rows


def metrics_table() -> str:
    """Every Prometheus metric as a row: name, type, labels and help text."""
    source = Path(metrics.__file__).read_text(encoding="utf-8")
    rows = ["| metric | type | labels | help |", "|---|---|---|---|"]
    for name, kind, labels, help_text in _metric_rows(source):
        shown = f"`{labels}`" if labels else ""
        rows.append(f"| `{name}` | {kind} | {shown} | {_cell(help_text)} |")
    return "\n".join(rows)


GENERATED: dict[str, tuple[str, Callable[[], str]]] = {
    "settings": ("settings.md", settings_table),
    "metrics": ("metrics.md", metrics_table),
}


def replace_region(text: str, name: str, body: str) -> str:
    """``text`` with the region ``name`` holding ``body``; a missing marker is an error."""
    begin = f"<!-- BEGIN GENERATED: {name} -->"
    end = f"<!-- END GENERATED: {name} -->"
    head, found, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise ValueError(f"the markers of the generated region {name!r} are missing")
    return f"{head}{begin}\n{body}\n{end}{tail}"


def stale_files(docs_dir: Path = DOCS_DIR, *, write: bool = False) -> list[Path]:
    """The docs whose generated regions differ from the code (rewritten when ``write``)."""
    stale = []
    for name, (filename, render) in GENERATED.items():
        path = docs_dir / filename
        text = path.read_text(encoding="utf-8")
        fresh = replace_region(text, name, render())
        if fresh != text:
            stale.append(path)
            if write:
                path.write_text(fresh, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated regions, or with ``--check`` exit 1 when one is stale."""
    args = sys.argv[1:] if argv is None else argv
    check = args == ["--check"]
    if args and not check:
        print(f"usage: {REGENERATE} [--check]", file=sys.stderr)  # noqa: T201
        return 2
    stale = stale_files(write=not check)
    for path in stale:
        verb = "is stale; run " + REGENERATE if check else "rewritten"
        print(f"{path}: {verb}", file=sys.stderr)  # noqa: T201
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

"""The shape of the package, printed and checked: ``python -m advisering.dev.structure``.

A newcomer reads the architecture from the folders, so the folders have to stay
honest. This prints every module with its line count and the import graph between
the top-level parts of ``advisering`` (a sub-package, or a top-level module), and
exits non-zero when that graph has a cycle, when a module outside ``cli`` and
``dev`` imports ``dev``, when a module passes the line limit, or when a function
passes the length limit. It reads the source with :mod:`ast`; it imports nothing.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
PACKAGE = Path(__file__).resolve().parents[1]
DEV_USERS = frozenset({"cli", "dev"})
# Functions that are data written as code, exempt from the length limit, each with its reason.
DATA_TABLES = {
    "advisering.http.openapi.openapi_document": "the OpenAPI document, one literal",
}


@dataclass(frozen=True)
class Module:
    """One source file: its dotted name, its part of the package, its size and its imports."""

    name: str
    part: str
    lines: int
    imports: frozenset[str]
    long_functions: tuple[tuple[str, int], ...]


@dataclass
class Report:
    """What the check found; empty ``problems`` means the structure holds."""

    modules: list[Module]
    edges: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def part_of(dotted: str) -> str:
    """The top-level part a module belongs to: ``advisering.worker.app`` -> ``worker``."""
    pieces = dotted.split(".")
    return pieces[1] if len(pieces) > 1 else "advisering"


def _imports(tree: ast.AST, name: str) -> Iterator[str]:
    package = name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _long_functions(tree: ast.AST, module: str) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES and f"{module}.{node.name}" not in DATA_TABLES:
                yield node.name, length


def read_module(path: Path, root: Path = PACKAGE) -> Module:
    """Parse one file of the package."""
    relative = path.relative_to(root.parent).with_suffix("")
    name = ".".join(relative.parts).removesuffix(".__init__")
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    own = frozenset(i for i in _imports(tree, name) if i.startswith("advisering."))
    return Module(name, part_of(name), len(source.splitlines()), own,
                  tuple(_long_functions(tree, name)))


def check(root: Path = PACKAGE) -> Report:
    """Read every module under ``root`` and collect the graph and its problems."""
    modules = sorted((read_module(p, root) for p in root.rglob("*.py")), key=lambda m: m.name)
    parts = {module.part for module in modules}
    report = Report(modules)
    for module in modules:
        report.edges.setdefault(module.part, set())
        for target in module.imports:
            other = part_of(target)
            if other not in parts:  # a name from a package's __init__, e.g. __version__
                other = "advisering"
            if other != module.part:
                report.edges[module.part].add(other)
            if other == "dev" and module.part not in DEV_USERS:
                report.problems.append(f"{module.name} imports {target}: only cli and dev may")
        if module.lines > MAX_MODULE_LINES:
            report.problems.append(f"{module.name}: {module.lines} lines (limit "
                                   f"{MAX_MODULE_LINES})")
        report.problems.extend(f"{module.name}.{func}: {length} lines (limit "
                               f"{MAX_FUNCTION_LINES})" for func, length in module.long_functions)
    report.problems.extend(f"import cycle: {' -> '.join(cycle)}"
                           for cycle in cycles(report.edges))
    return report


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by depth-first search, each reported once from its smallest node."""
    found: set[tuple[str, ...]] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                loop = path[path.index(nxt):]
                start = loop.index(min(loop))
                found.add(tuple(loop[start:] + loop[:start]))
            elif len(path) < len(edges) + 1:
                visit(nxt, [*path, nxt])

    for node in sorted(edges):
        visit(node, [node])
    return [[*loop, loop[0]] for loop in sorted(found)]


def render(report: Report) -> str:
    """The tree with line counts, then the graph, then the problems."""
    lines = ["advisering/ (lines per module)"]
    for module in report.modules:
        depth = module.name.count(".")
        lines.append(f"{'  ' * depth}{module.name.rsplit('.', 1)[-1]:<{36 - 2 * depth}}"
                     f"{module.lines:>5}")
    lines.append("\nimports between parts (part -> parts it imports):")
    lines.extend(f"  {part:<14} -> {', '.join(sorted(targets)) or '-'}"
                 for part, targets in sorted(report.edges.items()))
    lines.append("\nproblems:" if report.problems else "\nno problems: no cycle, dev used "
                 "only by cli and dev, modules and functions within their limits.")
    lines.extend(f"  {problem}" for problem in report.problems)
    return "\n".join(lines)


def main() -> int:
    """Print the structure; exit 1 when it has a problem."""
    report = check()
    print(render(report))  # noqa: T201 - a report for the terminal
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())

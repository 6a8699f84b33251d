"""The package's shape holds: no import cycle between parts, dev kept to dev, size limits."""

from __future__ import annotations

from pathlib import Path

from advisering.dev import structure


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "advisering"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_real_package_has_no_structural_problem() -> None:
    """advisering itself: no cycle, only cli and dev import dev, modules and functions in limits."""
    report = structure.check()
    assert report.problems == []
    assert {"cli", "dev", "engine", "worker", "kafka", "http", "edge", "rulebook"} <= set(
        report.edges)


def test_a_cycle_between_parts_is_a_problem(tmp_path: Path) -> None:
    """Two parts importing each other are reported as a cycle."""
    root = _tree(tmp_path, {
        "__init__.py": "", "a/__init__.py": "", "b/__init__.py": "",
        "a/x.py": "from advisering.b.y import f\n",
        "b/y.py": "from advisering.a import x\n",
    })
    report = structure.check(root)
    assert report.problems == ["import cycle: a -> b -> a"]


def test_importing_dev_outside_cli_and_dev_is_a_problem(tmp_path: Path) -> None:
    """A worker module importing the development package is reported; cli may import it."""
    root = _tree(tmp_path, {
        "__init__.py": "", "dev/__init__.py": "", "dev/sim.py": "",
        "worker/__init__.py": "", "worker/app.py": "import advisering.dev.sim\n",
        "cli/__init__.py": "", "cli/main.py": "from advisering.dev import sim\n",
    })
    problems = structure.check(root).problems
    assert problems == ["advisering.worker.app imports advisering.dev.sim: only cli and dev may"]


def test_long_modules_and_functions_are_problems(tmp_path: Path) -> None:
    """A module over the line limit and a function over the length limit are both reported."""
    body = "".join(f"    x{i} = {i}\n" for i in range(structure.MAX_FUNCTION_LINES))
    filler = "\n" * structure.MAX_MODULE_LINES
    root = _tree(tmp_path, {"__init__.py": "", "big.py": f"def f():\n{body}{filler}"})
    problems = structure.check(root).problems
    assert any(p.startswith("advisering.big:") for p in problems)
    assert any(p.startswith("advisering.big.f: 61 lines") for p in problems)


def test_render_prints_tree_graph_and_verdict() -> None:
    """The printed report holds the line counts, the graph and the verdict."""
    text = structure.render(structure.check())
    assert "imports between parts" in text
    assert "\n  cli            -> " in text
    assert "\n    main " in text

"""The generated tables in docs/ match the code they are generated from."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisering.dev import docs_gen
from advisering.settings import Settings


def test_generated_docs_are_current() -> None:
    """docs/settings.md and docs/metrics.md hold what `python -m advisering.dev.docs_gen` makes."""
    assert docs_gen.stale_files() == [], "run: python -m advisering.dev.docs_gen"


def test_every_setting_is_described_and_listed() -> None:
    """Every field of Settings has a description and a row in the settings table."""
    table = docs_gen.settings_table()
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"`ADVISERING_{name.upper()}`" in table


def test_metrics_table_lists_labels_and_types() -> None:
    """The metrics table names each metric with its type and labels."""
    table = docs_gen.metrics_table()
    assert "| `advisering_feedback_total` | counter | `rule, verdict` |" in table
    assert "| `advisering_ruleset_info` | info |" in table


def test_a_changed_table_is_stale_and_rewritten(tmp_path: Path) -> None:
    """An edited generated region is reported stale, and rewriting makes it current."""
    for filename in ("settings.md", "metrics.md"):
        text = (docs_gen.DOCS_DIR / filename).read_text(encoding="utf-8")
        edited = text.replace("| `ADVISERING_", "| `X_", 1).replace("| `advisering_", "| `x_", 1)
        (tmp_path / filename).write_text(edited, encoding="utf-8")
    assert docs_gen.stale_files(tmp_path, write=True) == [
        tmp_path / "settings.md", tmp_path / "metrics.md"]
    assert docs_gen.stale_files(tmp_path) == []


def test_missing_markers_are_an_error() -> None:
    """A document without the begin and end markers cannot be regenerated silently."""
    with pytest.raises(ValueError, match="markers"):
        docs_gen.replace_region("# no markers\n", "settings", "| table |")

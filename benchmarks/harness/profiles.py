"""cProfile files read by category: which package the CPU time went to."""

from __future__ import annotations

import cProfile
import io
import pstats
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IDLE = "idle (epoll wait)"
Needles = tuple[tuple[str, str], ...]


def categorise(filename: str, function: str, by_file: Needles, by_builtin: Needles) -> str:
    """The category of a profiled function: the first needle found in its file or name."""
    if filename == "~":
        if "epoll" in function or "select" in function:
            return IDLE
        for needle, name in by_builtin:
            if needle in function:
                return name
        return "builtins"
    for needle, name in by_file:
        if needle in filename:
            return name
    return "other python"


@dataclass(frozen=True)
class ProfileRead:
    raw: dict[Any, Any]
    by_category: Counter[str]  # tottime seconds
    total: float
    busy: float  # total but the idle waits
    top_tottime: str
    cumulative_selected: str


def read_profile(path: Path, by_file: Needles, by_builtin: Needles, top: int,
                 selected: str) -> ProfileRead:
    """Tottime by category, the ``top`` rows by tottime and the ``selected`` by cumulative."""
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_category: Counter[str] = Counter()
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_category[categorise(filename, function, by_file, by_builtin)] += tottime
    total = sum(by_category.values())
    busy = total - by_category.get(IDLE, 0.0)
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(top)
    cumulative = io.StringIO()
    pstats.Stats(str(path), stream=cumulative).sort_stats("cumulative").print_stats(selected)
    return ProfileRead(raw, by_category, total, busy, out.getvalue(), cumulative.getvalue())


def share_of_busy(name: str, seconds: float, busy: float) -> float | None:
    return round(seconds / busy, 3) if name != IDLE else None


def share_cell(row: dict[str, Any]) -> str:
    return f"{row['share_of_busy']:6.1%}" if row["share_of_busy"] is not None else "     -"


def profile_text(profile: cProfile.Profile, sort: str, limit: int) -> str:
    """An in-process profile as pstats prints it (directories stripped)."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    return out.getvalue()

"""Names from modules that may live elsewhere in the checkout being measured.

benchmarks/engine_compare.py runs the engine scenario against another source
tree (an older commit), where some modules had other paths. Each lookup names
the candidate modules, current path first.
"""

from __future__ import annotations

import importlib
from typing import Any


def imported(name: str, *modules: str) -> Any:
    """``name`` from the first of ``modules`` that imports and has it."""
    for module in modules:
        try:
            found = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(found, name):
            return getattr(found, name)
    raise ImportError(f"{name} is in none of {modules}")

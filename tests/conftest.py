"""Shared fixtures: the repository root, and the test session's own state directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.isolation import state_env

ROOT = Path(__file__).resolve().parent.parent

#: Where this test session's demo, inbox and worker state go (tests/isolation.py): set
#: here, when pytest loads this file, before any test module builds its settings.
STATE_DIR = Path(tempfile.mkdtemp(prefix="advisering-tests-"))
os.environ.update(state_env(STATE_DIR))


def pytest_unconfigure(config: pytest.Config) -> None:  # noqa: ARG001 - pytest's hook signature
    """Remove the session's state directory once every test and fixture has finished."""
    shutil.rmtree(STATE_DIR, ignore_errors=True)


@pytest.fixture
def root() -> Path:
    return ROOT


# Every test may ask for a PostgreSQL database, or for each inbox store in turn.
from tests.pg import audit_db, inbox_db, pg_server, pg_url  # noqa: E402, F401

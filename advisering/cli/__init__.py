"""The ``advisering`` command: one module per verb group, assembled in :mod:`.main`."""

from advisering.cli.main import main

__all__ = ["main"]

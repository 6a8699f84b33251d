"""The error a command raises when the person at the terminal can act on it."""

from __future__ import annotations


class UserError(Exception):
    """An error whose message is meant for the person at the terminal (exit status 2)."""

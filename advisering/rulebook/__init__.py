"""Operator tooling for rules: validate, test against a scenario, backtest on history.

Everything here runs the real engine (:mod:`advisering.engine`) and sends
nothing: what an operator sees before a rule goes live is what the worker
would do with it. The ``advisering rules`` verbs in :mod:`advisering.cli.rules`
are thin wrappers around these modules.
"""

from __future__ import annotations

# Scenario and history files may hold CPR parties (a source system's export, the
# simulator's output). They are pseudonymised with this fixed key, never with the
# municipality's: the tools need consistent pseudonyms within one run, and a
# pseudonym they print must not be linkable to the real ones on the bus.
THROWAWAY_KEY = b"advisering rules tool: a throwaway pseudonym key, never a real one"

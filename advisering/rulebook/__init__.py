"""Operator tooling for rules: validate, test against a scenario, backtest on history.

Everything here runs the real engine (:mod:`advisering.engine`) and sends
nothing: what an operator sees before a rule goes live is what the worker
would do with it. The ``advisering rules`` verbs in :mod:`advisering.cli.rules`
are thin wrappers around these modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from advisering.events import Vocabulary

if TYPE_CHECKING:
    from advisering.settings import Settings

# Scenario and history files may hold CPR parties (a source system's export, the
# simulator's output). They are pseudonymised with this fixed key, never with the
# municipality's: the tools need consistent pseudonyms within one run, and a
# pseudonym they print must not be linkable to the real ones on the bus.
THROWAWAY_KEY = b"advisering rules tool: a throwaway pseudonym key, never a real one"


def vocabulary_for(topics_dir: Path, settings: Settings | None = None) -> Vocabulary:
    """The municipality's vocabulary from topics/, or the core one without topic files.

    With ``settings``, the event limits (JSON depth, parties) are the configured
    ones, so the tools refuse what the worker refuses.
    """
    from advisering.kafka.topics import load_vocabulary  # noqa: PLC0415

    if (topics_dir / "case-events.yaml").exists():
        return load_vocabulary(topics_dir, settings)
    if settings is None:
        return Vocabulary()
    return Vocabulary(max_depth=settings.json_max_depth,
                      max_parties=settings.event_max_parties)

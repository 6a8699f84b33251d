"""advisering: an event-driven cross-system advisory bus for Danish municipalities."""

__version__ = "0.1.0"

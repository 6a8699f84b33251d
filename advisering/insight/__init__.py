"""A citizen's insight: every disclosure about them, from the audit store (JSON and a letter)."""

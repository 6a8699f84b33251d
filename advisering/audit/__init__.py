"""The audit store (every disclosure, by citizen pseudonym) and the sink that fills it."""

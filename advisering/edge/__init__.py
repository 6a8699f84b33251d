"""The publishing edge: pseudonymise and check an event before it reaches a topic (SDK included)."""

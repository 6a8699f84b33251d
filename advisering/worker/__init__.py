"""The Faust worker: thin agents around the pure engine."""

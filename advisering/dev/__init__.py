"""What only development uses: the local broker, the simulator, the demo scenario.

Nothing outside ``advisering.cli`` and ``advisering.dev`` imports this package (a test holds
that), so the running bus never depends on development tooling.
"""

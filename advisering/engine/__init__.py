"""The pure advisory engine: no Kafka, no Faust, no I/O.

Given an event, a citizen's state and the compiled rules, it returns the new
state and the notifications. The Faust worker, the backtest and the tests all
call the same code.
"""

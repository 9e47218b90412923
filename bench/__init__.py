"""quart-dl's benchmark: fan-out against two peers, memory, heartbeat and poll cost.

Run it with ``python -m bench`` (see BENCHMARKS.md); it is not a test suite and asserts nothing.
"""

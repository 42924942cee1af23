"""Benchmarks on the seeded graph: `homefeed bench fanout | live | read`.

`writes` (fan-out), `reads` and `live` are the three benches; `baseline` is the in-memory
API the read bench compares against; the other modules are what they share.
"""

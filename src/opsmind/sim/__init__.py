"""The fleet simulator: a world outside the engine, for the demo, the benchmarks and chaos experiments.

Only ``opsmind.cli`` and ``opsmind.bench`` import this package (an import-linter contract); the engine
sees the simulated fleet exactly as it would see a real one: metrics, the events a real platform emits,
and actuator replies. The ground truth it records is for scorers only.
"""

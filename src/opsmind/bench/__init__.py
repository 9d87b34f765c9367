"""Benchmarks: each prints a table, writes it to docs/benchmarks/ and runs its baseline in the same run."""

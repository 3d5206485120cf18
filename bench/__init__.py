"""Benchmarks: scripts that print tables; run them from the project root as ``python -m bench.NAME``."""

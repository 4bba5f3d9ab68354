"""Seeded, offline benchmarks: ``python -m benchmarks.<name> --json``."""

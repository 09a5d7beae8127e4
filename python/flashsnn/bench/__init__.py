"""Benchmarks: a registry of families, shapes and implementations, and one runner."""

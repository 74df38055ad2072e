"""Helpers for the test suite and benchmarks only: nothing in the pipeline imports this package."""

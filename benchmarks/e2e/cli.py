"""`lipstream bench e2e`."""

from benchmarks.e2e.bench import register

__all__ = ["register"]

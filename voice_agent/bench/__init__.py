"""Benchmarks of the running agent, measured as callers experience it."""

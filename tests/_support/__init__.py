"""Helpers for the background, journal, repair, outage and crash tests (and the benchmarks)."""

"""Benchmarks generated offline (listen-bench)."""

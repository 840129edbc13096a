"""Benchmarks: synthetic datasets with ground truth, metrics and reports."""

"""Benchmarks of the template against its performance budgets: `make bench` (`python -m bench`)."""

"""Shared machinery of the template's tests, benchmarks and demo.

It builds the reference core into a local package index (standing in for CodeArtifact), snapshots
the template into a tagged git repository, generates services with the real `copier` command, and
starts throwaway PostgreSQL clusters.
"""

"""The benchmarks run once, against the single server: each is a long end-to-end run of its own, and
the cluster has its own bench (`bench fanout --redis-cluster`, tests/bench/writes/test_cluster_bench.py)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the [cluster] runs of the bench tests."""
    bench_dir = str(config.rootpath / "tests" / "bench")
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_cluster = callspec is not None and callspec.params.get("servers") == "cluster"
        (dropped if on_cluster and str(item.path).startswith(bench_dir) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept

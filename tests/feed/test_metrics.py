"""homefeed.feed.metrics: every engine series is registered once, under the project's prefix, with
its documented kind. (That /metrics serves them and docs/operations.md lists them is checked in
tests/test_metrics.py.)"""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from homefeed.feed import metrics


def engine_series() -> dict[str, MetricWrapperBase]:
    return {name: value for name, value in vars(metrics).items() if isinstance(value, MetricWrapperBase)}


def test_every_series_is_named_under_the_prefix_and_registered() -> None:
    series = engine_series()
    assert len(series) >= 12
    registered = {m.name for m in REGISTRY.collect()}
    for attribute, metric in series.items():
        name = metric._name  # prometheus_client keeps the base name here
        assert name.startswith("homefeed_"), attribute
        assert name in registered, attribute


def test_labelled_series_take_their_labels() -> None:
    metrics.JOBS.labels("post", "done")
    metrics.PULL_FALLBACKS.labels("cold")
    metrics.CELEBRITY_CACHE.labels("hit")
    metrics.LIVE_DELIVERED.labels("ADDED")
    before = REGISTRY.get_sample_value("homefeed_jobs_total", {"kind": "post", "outcome": "done"}) or 0.0
    metrics.JOBS.labels("post", "done").inc()
    assert REGISTRY.get_sample_value("homefeed_jobs_total", {"kind": "post", "outcome": "done"}) == before + 1

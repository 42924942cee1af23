"""Prometheus metrics per GraphQL operation name."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from strawberry.extensions import SchemaExtension

REQUESTS = Counter(
    "homefeed_graphql_requests",
    "GraphQL operations served, by operation name and outcome.",
    ["operation", "outcome"],
)
LATENCY = Histogram(
    "homefeed_graphql_request_seconds",
    "GraphQL operation latency, by operation name.",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Operation names come from clients: cap the label set so a hostile client cannot grow it forever.
MAX_NAMES = 200
_seen: set[str] = set()


def operation_label(name: str | None) -> str:
    """The metric label for an operation name: itself, 'anonymous', or 'other' once over the cap."""
    if not name:
        return "anonymous"
    if not _NAME.match(name):
        return "other"
    if name not in _seen:
        if len(_seen) >= MAX_NAMES:
            return "other"
        _seen.add(name)
    return name


class OperationMetrics(SchemaExtension):
    """Counts and times every operation."""

    def on_operation(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        label = operation_label(self.execution_context.operation_name)
        LATENCY.labels(label).observe(time.perf_counter() - start)
        result = self.execution_context.result
        outcome = "error" if getattr(result, "errors", None) else "ok"
        REQUESTS.labels(label, outcome).inc()

"""/metrics on an API process lists every documented series, and docs/operations.md documents every series."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client.metrics import MetricWrapperBase

import homefeed.feed.metrics
import homefeed.schema.metrics
from homefeed.feed.live import RESYNC
from homefeed.feed.services import Services
from tests.api import Api

OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"
# Exported only by `serve --workers N` with N >= 2 (see docs/operations.md), not by a bare app.
ONLY_BALANCED = {"homefeed_connections"}


def documented() -> set[str]:
    """The metric names in the tables of the Metrics section of docs/operations.md."""
    text = OPERATIONS.read_text()
    section = text[text.index("\n## Metrics\n") : text.index("\n## ", text.index("\n## Metrics\n") + 1)]
    return set(re.findall(r"^\| `(homefeed_[a-z_]+)` \|", section, flags=re.MULTILINE))


def exported_names(module: ModuleType) -> set[str]:
    """The names a module's Prometheus objects are exposed under (counters with `_total`)."""
    names = set()
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_every_series_of_the_engine_and_of_graphql_is_documented() -> None:
    names = exported_names(homefeed.feed.metrics) | exported_names(homefeed.schema.metrics)
    assert {"homefeed_jobs_total", "homefeed_graphql_request_seconds"} <= names  # the scan works
    assert names - documented() == set()


def test_the_documentation_names_no_series_that_does_not_exist() -> None:
    names = exported_names(homefeed.feed.metrics) | exported_names(homefeed.schema.metrics)
    assert documented() - names - ONLY_BALANCED == set()


async def test_a_fresh_api_process_lists_every_documented_series(api: Api) -> None:
    # Before any job, fallback read or live update has happened in this app, every series is
    # there (labelled ones as their HELP and TYPE lines), so dashboards and alerts find them.
    response = await api.http.get("/metrics")
    assert response.status_code == 200
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", response.text, flags=re.MULTILINE))
    missing = {name for name in documented() - ONLY_BALANCED if name not in types}
    assert missing == set()
    for name in documented() - ONLY_BALANCED:
        assert (types[name] == "counter") == name.endswith("_total"), name


def test_importing_the_app_alone_registers_every_series() -> None:
    # In a fresh interpreter, as uvicorn's factory loads it: nothing else imported first.
    scrape = subprocess.run(
        [
            sys.executable,
            "-c",
            "import homefeed.app, prometheus_client as p; print(p.generate_latest().decode())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    types = set(re.findall(r"^# TYPE (\S+) ", scrape, flags=re.MULTILINE))
    assert documented() - ONLY_BALANCED - types == set()


def sample(text: str, name: str, **labels: str) -> float:
    """One sample of an exposition, 0 if absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{name}(?:\{{{re.escape(wanted)}\}})? (\S+)$" if labels else rf"^{name} (\S+)$"
    match = re.search(pattern, text, flags=re.MULTILINE)
    return float(match[1]) if match else 0.0


@pytest.mark.parametrize("subscribers", [1, 3])
async def test_live_series_on_metrics_follow_the_hub(api: Api, services: Services, subscribers: int) -> None:
    viewers = [await services.users.create(f"v{i}", "v", "x") for i in range(subscribers)]
    before = (await api.http.get("/metrics")).text
    resyncs = sample(before, "homefeed_live_resyncs_total")
    async with contextlib.AsyncExitStack() as stack:
        subs = [await stack.enter_async_context(services.live.subscribe(v.id)) for v in viewers]
        during = (await api.http.get("/metrics")).text
        assert (
            sample(during, "homefeed_live_subscribers")
            == sample(before, "homefeed_live_subscribers") + subscribers
        )
        for sub in subs:
            sub.offer(RESYNC)
            assert await sub.next() is RESYNC
        after = (await api.http.get("/metrics")).text
        assert sample(after, "homefeed_live_resyncs_total") == resyncs + subscribers
        delivered = sample(after, "homefeed_live_events_delivered_total", kind="RESYNC")
        assert (
            delivered - sample(before, "homefeed_live_events_delivered_total", kind="RESYNC") == subscribers
        )
    gone = (await api.http.get("/metrics")).text
    assert sample(gone, "homefeed_live_subscribers") == sample(before, "homefeed_live_subscribers")

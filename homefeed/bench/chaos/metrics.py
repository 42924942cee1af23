"""The write path as /metrics shows it at the end of a run, scraped from an API process and a worker.

Counters start over when a process restarts, so the figures cover each process's life since its
last kill: they show that the series exist and move, not totals for the run.
"""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# The series worth printing; the JSON keeps every homefeed_* sample.
HEADLINE = (
    "homefeed_outbox_jobs",
    "homefeed_outbox_oldest_age_seconds",
    "homefeed_dead_jobs",
    "homefeed_fanout_lag_seconds_count",
    "homefeed_live_subscribers",
    "homefeed_live_resyncs_total",
    "homefeed_cold_rebuilds_total",
    "homefeed_graphql_requests_total",
)


def parse(text: str) -> dict[str, float]:
    """`homefeed_*` samples by name and labels (`name{k="v",…}`), without the `_created` ones."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("homefeed_") or sample.name.endswith("_created"):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def scrape(url: str) -> dict[str, float]:
    """One process's /metrics, parsed; empty if it does not answer."""

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    try:
        return parse(await asyncio.to_thread(fetch))
    except OSError:
        return {}


def headline(samples: dict[str, float]) -> dict[str, float]:
    """The HEADLINE series, summed over their labels."""
    out: dict[str, float] = {}
    for key, value in samples.items():
        name = key.split("{", 1)[0]
        if name in HEADLINE:
            out[name] = out.get(name, 0.0) + value
    return out

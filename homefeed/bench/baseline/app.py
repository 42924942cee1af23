"""The baseline's app factory: the real app over the snapshot's services, for the bench's server."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette

from homefeed.app import create_app
from homefeed.bench.baseline import SNAPSHOT_ENV
from homefeed.bench.baseline.services import open_baseline_services
from homefeed.feed import config
from homefeed.feed.config import Settings
from homefeed.feed.services import Services


def baseline_app() -> Starlette:
    """Factory for the bench's uvicorn processes: settings from the environment, the snapshot
    from SNAPSHOT_ENV (a file the bench wrote for this server alone)."""
    raw = os.environ.get(SNAPSHOT_ENV)
    if not raw:
        raise RuntimeError(f"the baseline app needs {SNAPSHOT_ENV}, a snapshot `bench read` wrote")
    snapshot = Path(raw)
    if not snapshot.is_file():
        raise RuntimeError(f"{SNAPSHOT_ENV}={raw} is not a file")

    async def opener(settings: Settings) -> Services:
        return await open_baseline_services(settings, snapshot)

    # Nothing is written: there is no outbox for a fan-out worker to poll. Nor is anything
    # counted: the baseline has no Redis, so its query limits are off (the bench turns the real
    # app's off too, so both sides serve the same work).
    settings = config.load().with_(inprocess_worker=False, query_rate_limit=0, anonymous_rate_limit=0)
    return create_app(settings, opener=opener)

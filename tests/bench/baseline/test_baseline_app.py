"""The read bench's baseline: the real app served from a snapshot, by the bench's own factory."""

from __future__ import annotations

import asyncio
import base64
import urllib.request
from pathlib import Path

import orjson
import pytest

from homefeed.bench.baseline import APP_FACTORY, SNAPSHOT_ENV
from homefeed.bench.baseline.snapshot import Snapshot, capture
from homefeed.bench.reads.load import FEED
from homefeed.bench.server import ServedApi
from homefeed.feed import config
from homefeed.feed.auth import Tokens
from homefeed.feed.config import Settings
from homefeed.feed.services import Services
from homefeed.seed import SeedParams
from homefeed.seed.run import seed


def _home_feed(url: str, token: str) -> list[int]:
    body = orjson.dumps({"query": FEED, "variables": {"first": 20}, "operationName": "HomeFeed"})
    request = urllib.request.Request(
        url + "/graphql",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        doc = orjson.loads(response.read())
    assert not doc.get("errors"), doc
    edges = doc["data"]["homeFeed"]["edges"]
    return [int(base64.b64decode(e["node"]["id"]).decode().rpartition(":")[2]) for e in edges]


async def test_two_balanced_processes_serve_the_snapshot_as_the_engine_paged_it(
    settings_: Settings, services: Services, tmp_path: Path
) -> None:
    await seed(services.pool, SeedParams(users=120, seed=7, posts_per_user=4.0))
    viewers = [int(r["id"]) for r in await services.pool.fetch("SELECT id FROM users ORDER BY id LIMIT 5")]
    snap = await capture(services, viewers, 20, 1)
    path = tmp_path / "baseline.pickle"
    snap.save(path)
    assert Snapshot.load(path).pages.keys() == snap.pages.keys()

    secret = config.jwt_secret(settings_)
    tokens = Tokens(secret, 3600)
    server = ServedApi(
        settings_.with_(data_dir=tmp_path),
        secret,
        2,
        {SNAPSHOT_ENV: str(path), "HOMEFEED_INPROCESS_WORKER": "0"},
        app=APP_FACTORY,
    )
    try:
        await server.wait_healthy(60)
        assert len(server.workers()) == 2
        for viewer in viewers:
            got = await asyncio.to_thread(_home_feed, server.url, tokens.issue(viewer))
            assert got == list(snap.pages[(viewer, None, 20)].post_ids)
    finally:
        server.stop()


def test_the_factory_refuses_to_start_without_a_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    from homefeed.bench.baseline.app import baseline_app

    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    with pytest.raises(RuntimeError, match=SNAPSHOT_ENV):
        baseline_app()

"""Knobs of `homefeed bench live`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LiveOptions:
    """Knobs of `homefeed bench live` (defaults finish in a few minutes on two cores)."""

    subscribers: int = 1000
    posts: int = 30  # alternately by the ordinary author and the celebrity
    legacy_share: float = 0.1  # fraction of subscribers on the legacy graphql-ws protocol
    ordinary_followers: int = 10_000  # the pushed author has about this many followers
    threshold: int | None = None  # the server's celebrity threshold; default: the celebrity's count
    workers: int = 1  # API processes
    connect_concurrency: int = 50  # websocket handshakes in flight at once
    compression: bool = True  # offer permessage-deflate, as browsers and most clients do
    per_subscriber: bool = False  # a document executed per subscriber (the render-once baseline)
    worker_apart: bool = False  # fan-out in a `homefeed worker` process, out of the server's CPU
    post_timeout: float = 10.0  # how long one post may take to reach every subscriber
    gap: float = 0.2  # pause between a post's last delivery and the next post
    server_timeout: float = 90.0  # start-up budget of the API process
    min_users: int = 1_000  # smaller graphs are refused (the test passes a tiny number)
    json_path: Path | None = None
    seed: int = 0

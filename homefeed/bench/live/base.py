"""The live bench's state, and the authors it posts as."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from homefeed.bench.live.options import LiveOptions
from homefeed.feed.config import Settings


@dataclass
class Author:
    id: int
    followers: int
    mode: int  # fan-out mode before the bench
    pull_from: int | None


class BenchBase:
    """The bench's state; its steps are subclasses' methods (see measure.py)."""

    def __init__(
        self,
        settings: Settings,
        options: LiveOptions,
        log: Callable[[str], None],
        pool: asyncpg.Pool,
        redis: Redis,
    ) -> None:
        self.settings = settings
        self.opt = options
        self.log = log
        self.pool = pool
        self.redis = redis
        self.rng = random.Random(options.seed)
        self.notes: list[str] = []
        self.created: list[tuple[str, str]] = []  # (global post id, author token)

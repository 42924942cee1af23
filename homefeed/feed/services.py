"""Everything a process needs to serve, opened from settings and closed together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from homefeed.feed import config
from homefeed.feed.auth import Passwords, Tokens
from homefeed.feed.config import Settings
from homefeed.feed.cursors import Cursors
from homefeed.feed.feeds import Feeds
from homefeed.feed.limits import Limits
from homefeed.feed.live import LiveHub, Notices
from homefeed.feed.ranking.impressions import ImpressionLog
from homefeed.feed.ranking.ranker import Ranker
from homefeed.feed.ranking.scoring import Scorer
from homefeed.feed.ranking.snapshots import Snapshots
from homefeed.feed.redis_client import RedisClient, client_name, open_redis
from homefeed.feed.replicas import Replicas
from homefeed.feed.store.likes import Likes
from homefeed.feed.store.pool import POOL_CLOSE_SECONDS, close_pool, create_pool
from homefeed.feed.store.posts import Posts
from homefeed.feed.store.relations import Relations
from homefeed.feed.store.users import Users

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    redis: RedisClient
    users: Users
    posts: Posts
    relations: Relations
    likes: Likes
    feeds: Feeds
    cursors: Cursors
    tokens: Tokens
    passwords: Passwords
    limits: Limits
    notices: Notices
    live: LiveHub
    ranker: Ranker
    impressions: ImpressionLog
    replicas: Replicas | None = None

    async def close(self, *, pool_deadline: float = POOL_CLOSE_SECONDS) -> None:
        """Close the live hub and the pools; connections still in use after `pool_deadline`
        seconds are terminated."""
        await self.live.close()
        await self.impressions.close()
        await self.feeds.close()
        if self.replicas is not None:
            await self.replicas.close()
        await self.redis.aclose()
        await close_pool(self.pool, pool_deadline)


async def open_services(settings: Settings, *, passwords: Passwords | None = None) -> Services:
    """Connect to PostgreSQL and Redis (both URLs must be set) and build the engine objects."""
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("open_services needs database_url and redis_url")
    pool = await create_pool(settings.database_url)
    redis = await open_redis(
        settings.redis_url,
        name=client_name(settings.redis_prefix),
        socket_timeout=5,
        socket_connect_timeout=2,
    )
    replicas = None
    if settings.database_replica_urls:
        replicas = await Replicas.open(
            pool,
            redis,
            settings.redis_prefix,
            settings.database_replica_urls,
            max_lag_ms=settings.replica_max_lag_ms,
        )
    return build_services(settings, pool, redis, passwords=passwords, replicas=replicas)


def build_services(
    settings: Settings,
    pool: asyncpg.Pool,
    redis: RedisClient,
    *,
    passwords: Passwords | None = None,
    replicas: Replicas | None = None,
) -> Services:
    """The engine objects over open connections (and replicas, whose closing they take over)."""
    secret = config.jwt_secret(settings)
    posts = Posts(pool, replicas, replicas)
    feeds = Feeds(pool, redis, posts, settings, replicas=replicas)
    snapshots = Snapshots(redis, settings.redis_prefix, settings.ranked_snapshot_seconds, feeds.reads)
    ranker = Ranker(pool, feeds, snapshots, Scorer(config.rank_model_path(settings)), settings)
    return Services(
        settings=settings,
        pool=pool,
        redis=redis,
        users=Users(pool, replicas, replicas),
        posts=posts,
        relations=Relations(pool, replicas, replicas),
        likes=Likes(pool, replicas, replicas),
        feeds=feeds,
        cursors=Cursors(secret),
        tokens=Tokens(secret, settings.token_ttl_days * 86400),
        passwords=passwords
        or Passwords(concurrency=settings.password_concurrency, queue=settings.password_queue),
        limits=Limits(redis, settings),
        notices=Notices(redis, settings.redis_prefix),
        live=LiveHub(redis, pool, posts, settings.redis_prefix),
        ranker=ranker,
        impressions=ImpressionLog(pool, settings.impression_sample_percent, settings.impression_queue),
        replicas=replicas,
    )

"""A small world on a cluster of its own, for tests that reshard it or kill its masters.

Each step of its load is sequential (post, fan-out, then reads), so a read's expected answer is
the pull query at that moment; the cluster changes underneath concurrently (a thread runs
valkey-cli, or a master is killed), which is what the tests are about.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client import REGISTRY

from homefeed.bench.valkey_cluster import LocalCluster
from homefeed.feed.config import Settings
from homefeed.feed.redis_client import open_redis
from homefeed.feed.services import Services, build_services
from homefeed.feed.store.pool import create_pool
from homefeed.feed.timeline.slots import key_slot
from homefeed.workers.fanout_worker import FanoutWorker
from tests.conftest import FAST_PASSWORDS, isolated_settings


def redis_fallbacks() -> float:
    """Reads answered from PostgreSQL because Redis failed (or the breaker kept them off it)."""
    return sum(
        REGISTRY.get_sample_value("homefeed_pull_fallback_reads_total", {"reason": reason}) or 0.0
        for reason in ("redis_error", "breaker_open")
    )


@asynccontextmanager
async def services_on(cluster: LocalCluster, servers: Settings, **changes: object) -> AsyncIterator[Services]:
    """The engine over a fresh schema and prefix, its Redis the given cluster."""
    async with isolated_settings(servers.with_(redis_url=cluster.url)) as settings:
        settings = settings.with_(**changes)
        assert settings.database_url and settings.redis_url
        pool = await create_pool(settings.database_url)
        redis = await open_redis(settings.redis_url)
        services = build_services(settings, pool, redis, passwords=FAST_PASSWORDS)
        try:
            yield services
        finally:
            await services.close()


@dataclass
class World:
    services: Services
    users: list[int]
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    acked: dict[int, int] = field(default_factory=dict)  # post id -> author, once create returned
    compared: int = 0

    @classmethod
    async def make(cls, services: Services, users: int = 40, follows: int = 8) -> World:
        """Users following a few others each; two popular authors (pulled at a threshold of 20)."""
        ids = [(await services.users.create(f"u{i}", f"u{i}", "x")).id for i in range(users)]
        world = cls(services, ids)
        for i, user in enumerate(ids):
            # Half the viewers read the popular (pulled) authors' lists, half only their timeline.
            popular = ids[:2] if i % 2 else []
            for other in world.rng.sample(ids, follows) + popular:
                if other != user:
                    await services.relations.follow(user, other)
        await FanoutWorker(services).drain()
        for _ in range(2 * users):
            await world.post()
        await world.drain()
        return world

    async def post(self) -> int:
        """One post by a random user, as createPost makes it (committed, then the author's own append)."""
        author = self.rng.choice(self.users)
        post = await self.services.posts.create(author, f"post {len(self.acked)}")
        self.acked[post.id] = author
        await self.services.feeds.own_post(author, post.id)
        return post.id

    async def drain(self) -> None:
        """Run every fan-out job that can run now (failed ones are retried later by the outbox)."""
        await FanoutWorker(self.services).drain()

    async def outbox_left(self) -> int:
        left: int = await self.services.pool.fetchval("SELECT count(*) FROM outbox")
        return left

    async def dead_jobs(self) -> int:
        dead: int = await self.services.pool.fetchval("SELECT count(*) FROM dead_jobs")
        return dead

    async def check(
        self, viewers: list[int] | None = None, first: int = 30, *, lagging: bool = False
    ) -> None:
        """Each viewer's first page equals the pull query's.

        With `lagging`, posts whose fan-out job is still in the outbox (failed, to be retried)
        are left out of both sides: until the job is redone a follower may or may not have one,
        which is fan-out lag, not loss (check_everything runs once the outbox is empty).
        """
        feeds = self.services.feeds
        pending = await self.pending_posts() if lagging else set()
        for viewer in viewers if viewers is not None else self.users:
            home = await feeds.home(viewer, first, None)
            pull = await feeds.pull_page(viewer, first + len(pending), None)
            got = [p for p in home.post_ids if p not in pending]
            want = [p for p in pull.post_ids if p not in pending][: len(got) if pending else None]
            assert got == want, (
                f"viewer {viewer}: feed differs from the pull query: {got} != {want}; pending {pending}"
            )
            self.compared += 1

    async def pending_posts(self) -> set[int]:
        """Posts whose fan-out job has not finished."""
        rows = await self.services.pool.fetch(
            "SELECT subject_id FROM outbox WHERE kind IN ('post', 'post_chunk')"
        )
        return {r["subject_id"] for r in rows}

    async def check_everything(self) -> None:
        """Every viewer's whole feed equals the pull query's; every acknowledged post is in its author's."""
        feeds = self.services.feeds
        for viewer in self.users:
            seen: list[int] = []
            before: int | None = None
            while True:
                home = await feeds.home(viewer, 100, before)
                pull = await feeds.pull_page(viewer, 100, before)
                assert home.post_ids == pull.post_ids, f"viewer {viewer}: feed differs below {before}"
                seen += home.post_ids
                if not home.has_next:
                    break
                before = home.post_ids[-1]
            own = {p for p, a in self.acked.items() if a == viewer}
            assert own <= set(seen), f"viewer {viewer} is missing their own acknowledged posts"

    def timeline_slots(self) -> list[int]:
        """The hash slot of each user's keys."""
        return [key_slot(str(u).encode()) for u in self.users]

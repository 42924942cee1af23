"""The fan-out bench's state and what every measurement shares: its timelines, posts and clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager

from redis.exceptions import RedisError

from homefeed.bench.errors import SEED_HINT, BenchError
from homefeed.bench.writes.options import FanoutOptions
from homefeed.feed.ids import make_id
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.services import Services
from homefeed.feed.timeline.encoding import encode_id
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import IdLists, ListQuery

# The default Redis/Valkey limit for listpack-encoded sorted sets: above it a sorted set
# becomes a skiplist + hash table, the "default sorted set" the memory target compares with.
DEFAULT_ZSET_LISTPACK_ENTRIES = 128
# The id a read reports after the last entry of a list that holds all history.
BOTTOM = 0

_ACTIVE_FOLLOWERS = """
SELECT f.follower_id
FROM followers f JOIN users u ON u.id = f.follower_id
WHERE f.followee_id = $1 AND u.last_seen_at >= now() - make_interval(days => $2)
ORDER BY f.follower_id
"""


@contextmanager
def timer(into: list[float]) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        into.append(time.perf_counter() - began)


def as_text(value: object) -> str:
    """A Redis reply (bytes or not) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _Members:
    """Fresh timeline members for synthetic rounds: ids above every existing one, never repeated."""

    def __init__(self) -> None:
        self._seq = 0

    def next(self) -> bytes:
        self._seq += 1
        return encode_id(make_id(int(time.time() * 1000) + 60_000, self._seq))


class BenchBase:
    """The bench's state; each measurement is a subclass's method (see measure.py)."""

    def __init__(self, services: Services, options: FanoutOptions, log: Callable[[str], None]) -> None:
        self.s = services
        self.opt = options
        self.log = log
        self.pool = services.pool
        self.redis: RedisClient = services.redis
        self.feeds = services.feeds
        self.size = services.feeds.size
        # The engine's own key layout and list code over the bench's prefix: the bench reads and
        # trims its timelines exactly as Feeds does, which keeps these to itself.
        self.keys = Keys(services.settings.redis_prefix)
        self.lists = IdLists(services.redis, self.size)
        self.ttl = services.feeds.timeline_ttl
        self.rng = random.Random(options.seed)
        self.members = _Members()
        self.created: list[tuple[int, int]] = []  # (author, post id) to delete at the end
        self.warm: set[int] = set()  # users whose bench timeline exists
        self.templates: list[bytes] = []  # DUMPs of really rebuilt timelines, for warm-up copies
        self.notes: list[str] = []

    async def _check_graph(self, own_connections: int = 0) -> tuple[int, int]:
        """Refuse a graph too small or with pending jobs; note other homefeed processes on it.

        own_connections: this bench's connections to the database beyond this pool's (other sides').
        """
        users: int = await self.pool.fetchval("SELECT count(*) FROM users")
        follows: int = await self.pool.fetchval("SELECT count(*) FROM followers")
        if users < max(self.opt.min_users, 2) or follows == 0:
            raise BenchError(
                f"the graph has {users:,} users and {follows:,} follows, too small to measure "
                f"(at least {self.opt.min_users:,} users wanted): {SEED_HINT}"
            )
        pending: int = await self.pool.fetchval("SELECT count(*) FROM outbox")
        if pending:
            # The bench's worker writes under its own key prefix: it must not consume real jobs.
            raise BenchError(
                f"the outbox holds {pending:,} pending jobs: let a worker (`homefeed worker`) finish them "
                "before benchmarking"
            )
        others: int = await self.pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND application_name = 'homefeed'"""
        )
        others -= self.pool.get_size() + own_connections
        if others > 0:
            # Another homefeed process (an API with its in-process worker, a `homefeed worker`)
            # would claim the bench's outbox jobs and write them under its own key prefix.
            self.notes.append(
                f"{others} other homefeed connection(s) to this database: another process's fan-out "
                "worker may take the bench's jobs (figures and delivery checks then suffer)"
            )
            self.log(f"warning: {self.notes[-1]}")
        return users, follows

    async def cleanup(self) -> None:
        """Delete the bench's posts (and any outbox rows left for them) and its timelines."""
        if self.created:
            ids = [p for _, p in self.created]
            authors = sorted({a for a, _ in self.created})
            await self.pool.execute(
                "DELETE FROM outbox WHERE actor_id = ANY($1::bigint[]) AND subject_id = ANY($2::bigint[])",
                authors,
                ids,
            )
            await self.pool.execute(
                "DELETE FROM posts WHERE author_id = ANY($1::bigint[]) AND id = ANY($2::bigint[])",
                authors,
                ids,
            )
        batch: list[bytes] = []
        async for key in self.redis.scan_iter(match=f"{self.keys.prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await self.redis.unlink(*batch)
                batch.clear()
        if batch:
            await self.redis.unlink(*batch)

    def tl(self, user: int) -> bytes:
        return self.keys.timeline(user).encode()

    async def _sizes(self, users: Sequence[int]) -> list[int]:
        """How many ids each user's bench timeline holds, read through the engine (any storage)."""
        queries = [ListQuery(self.keys.timeline(u), None, 2 * self.size + 16) for u in users]
        reads = await self.lists.read(queries)
        return [sum(1 for i in r.ids if i != BOTTOM) for r in reads]

    async def _holding(self, users: Sequence[int], post_id: int) -> list[bool]:
        """Whether each user's bench timeline holds post_id among its newest entries."""
        reads = await self.lists.read([ListQuery(self.keys.timeline(u), None, 64) for u in users])
        return [post_id in r.ids for r in reads]

    async def _active_followers(self, author: int) -> list[int]:
        rows = await self.pool.fetch(_ACTIVE_FOLLOWERS, author, self.s.settings.active_days)
        return [r["follower_id"] for r in rows]

    async def _create_post(self, author: int, text: str) -> int:
        post = await self.s.posts.create(author, text)
        self.created.append((author, post.id))
        return post.id

    async def _warm_up(self, users: Sequence[int]) -> None:
        """Give every user a full bench timeline: a few real rebuilds, copied to the rest."""
        todo = [u for u in dict.fromkeys(users) if u not in self.warm]
        if not todo:
            return
        if not self.templates:
            sample = self.rng.sample(todo, min(24, len(todo)))
            for user in sample:
                await self.feeds.rebuild_timeline(user)
                self.warm.add(user)
            cards = await self._sizes(sample)
            fullest = max(cards) if cards else 0
            for user, card in zip(sample, cards, strict=True):
                if card >= min(self.size, fullest):
                    dumped = await self.redis.dump(self.tl(user))
                    if dumped:
                        self.templates.append(dumped)
            todo = [u for u in todo if u not in self.warm]
        began = time.perf_counter()
        ttl_ms = self.ttl * 1000
        for start in range(0, len(todo), 1000):
            async with self.redis.pipeline(transaction=False) as pipe:
                for i, user in enumerate(todo[start : start + 1000]):
                    pipe.restore(
                        self.tl(user), ttl_ms, self.templates[(start + i) % len(self.templates)], True
                    )
                await pipe.execute()
        self.warm.update(todo)
        self.log(f"  warmed up {len(todo):,} timelines in {time.perf_counter() - began:.1f} s")

    async def _poll(self, users: Sequence[int], post_id: int, deadline: float) -> bool:
        """Wait until every user's timeline holds post_id (a pipelined read ~every ms); False at deadline."""
        pending = list(users)
        while pending:
            found = await self._holding(pending, post_id)
            pending = [u for u, f in zip(pending, found, strict=True) if not f]
            if not pending:
                return True
            if time.perf_counter() > deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    @contextlib.asynccontextmanager
    async def _default_zset_limit(self) -> AsyncIterator[None]:
        """Lower the listpack limit for sorted sets to the server default meanwhile (restored after).

        The engine raises it at start-up; a sorted set created while it is low is a skiplist and
        stays one. Nothing in the engine depends on it being high while the bench runs.
        """
        previous: int | None = None
        try:
            reply = await self.redis.config_get("zset-max-listpack-entries")
            previous = int(reply["zset-max-listpack-entries"] or 0)
            await self.redis.config_set("zset-max-listpack-entries", DEFAULT_ZSET_LISTPACK_ENTRIES)
        except (RedisError, KeyError, ValueError):
            previous = None
            self.notes.append(
                "could not lower zset-max-listpack-entries (CONFIG denied): defaults not certain"
            )
        try:
            yield
        finally:
            if previous is not None:
                await self.redis.config_set("zset-max-listpack-entries", previous)

"""Mixed traffic through the API: reads, posts, deletes, likes, follows, unfollows, blocks.

Actors draw operations at random at a steady total rate. Every acknowledged post is recorded
in the ledger, and one viewer who should see it (a follower, else its author) is polled until
it shows: that is the visibility lag.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import asyncpg

from homefeed.bench.chaos.client import (
    BLOCK,
    CREATE_POST,
    DELETE_POST,
    FEED,
    FOLLOW,
    LIKE_POST,
    UNFOLLOW,
    Client,
    Reply,
    global_id,
    pk_of,
)
from homefeed.bench.chaos.fleet import Fleet
from homefeed.bench.chaos.ledger import AckedPost, Ledger
from homefeed.bench.chaos.world import World, cast_followers
from homefeed.feed.modes import HYSTERESIS

ACTORS = 8
PROBE_EVERY = 0.2  # seconds between polls of the viewers still waiting for a post
PROBE_GIVE_UP = 60.0  # a post not visible by then is left to the final checks
# Failures after which a createPost may still have committed: never promised, never counted.
UNKNOWN = ("connection", "timeout")


class Traffic:
    """The actors and the visibility prober, until a deadline."""

    def __init__(
        self,
        world: World,
        fleet: Fleet,
        client: Client,
        ledger: Ledger,
        pool: asyncpg.Pool,
        rate: float,
        seed: int,
    ) -> None:
        self.world = world
        self.fleet = fleet
        self.client = client
        self.ledger = ledger
        self.pool = pool
        self.rate = rate
        self.rng = random.Random(seed)
        self.mine: list[int] = []  # acknowledged posts not yet deleted by the run
        self.draining_boundary = False  # which way the boundary author's follower count walks
        ops: list[tuple[Callable[[], Awaitable[None]], int]] = [
            (self.read, 40), (self.post, 20), (self.like, 10), (self.follow, 8), (self.unfollow, 8),
            (self.delete, 5), (self.boundary, 6), (self.block, 1),
        ]  # fmt: skip
        self.ops = [op for op, _ in ops]
        self.weights = [w for _, w in ops]

    async def run(self, until: float) -> None:
        """Act until `until` (monotonic), then poll the last posts a little longer."""
        actors = [asyncio.create_task(self._actor(until)) for _ in range(ACTORS)]
        prober = asyncio.create_task(self._probe(until + PROBE_GIVE_UP / 4))
        await asyncio.gather(*actors)
        await prober

    async def _actor(self, until: float) -> None:
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.expovariate(self.rate / ACTORS))
            await self.rng.choices(self.ops, self.weights)[0]()

    async def _call(self, op: str, query: str, variables: dict[str, object], user: int) -> Reply:
        live = self.fleet.urls()
        if not live:
            self.ledger.failed(op, "no API running")
            return Reply(None, "no API running")
        slot, url = self.rng.choice(live)
        reply = await self.client.call(url, query, variables, self.world.tokens[user])
        if reply.ok:
            self.ledger.ops[op] += 1
            if op == "read":
                self.ledger.reads.append((time.time(), slot))
        else:
            self.ledger.failed(op, reply.failure or "?")
        return reply

    def _user(self) -> int:
        return self.rng.choice(self.world.cast)

    async def read(self) -> None:
        viewer = self._user()
        reply = await self._call("read", FEED, {"first": 20}, viewer)
        if reply.ok and reply.data and self.rng.random() < 0.3:
            cursor = reply.data["homeFeed"]["pageInfo"]["endCursor"]
            if cursor:
                await self._call("read", FEED, {"first": 20, "after": cursor}, viewer)

    async def post(self, author: int | None = None) -> None:
        author = self._user() if author is None else author
        n = sum(self.ledger.ops.values())
        reply = await self._call("createPost", CREATE_POST, {"text": f"chaos {author} {n}"}, author)
        if reply.ok and reply.data:
            at = time.time()
            pk = pk_of(reply.data["createPost"]["id"])
            followers = await cast_followers(self.pool, author, self.world.cast, 3)
            probe = self.rng.choice(followers) if followers else author
            self.ledger.posts[pk] = AckedPost(pk, author, at, probe)
            self.mine.append(pk)
        elif reply.failure in UNKNOWN:
            self.ledger.unknown_posts += 1

    async def delete(self) -> None:
        if not self.mine:
            return
        pk = self.mine.pop(self.rng.randrange(len(self.mine)))
        post = self.ledger.posts[pk]
        post.deleted = True
        author = post.author
        await self._call("deletePost", DELETE_POST, {"id": global_id("Post", pk)}, author)

    async def like(self) -> None:
        if self.mine:
            pk = self.rng.choice(self.mine[-200:])
            await self._call("likePost", LIKE_POST, {"id": global_id("Post", pk)}, self._user())

    async def follow(self, viewer: int | None = None, target: int | None = None) -> None:
        viewer = self._user() if viewer is None else viewer
        target = self._user() if target is None else target
        if viewer != target:
            await self._call("follow", FOLLOW, {"u": global_id("User", target)}, viewer)

    async def unfollow(self, viewer: int | None = None, target: int | None = None) -> None:
        viewer = self._user() if viewer is None else viewer
        if target is None:
            target = await self.pool.fetchval(
                "SELECT followee_id FROM follows WHERE follower_id = $1 ORDER BY random() LIMIT 1", viewer
            )
        if target is not None:
            await self._call("unfollow", UNFOLLOW, {"u": global_id("User", target)}, viewer)

    async def block(self) -> None:
        viewer, target = self._user(), self._user()
        if viewer != target:
            await self._call("block", BLOCK, {"u": global_id("User", target)}, viewer)

    async def boundary(self) -> None:
        """Walk the boundary author's follower count across the threshold, and have them post."""
        author, threshold = self.world.boundary, self.world.threshold
        count: int = await self.pool.fetchval("SELECT follower_count FROM users WHERE id = $1", author)
        if count >= threshold:
            self.draining_boundary = True
        elif count < threshold * HYSTERESIS:
            self.draining_boundary = False
        if self.draining_boundary:
            followers = await cast_followers(self.pool, author, self.world.cast, 50)
            if followers:
                await self.unfollow(self.rng.choice(followers), author)
        else:
            await self.follow(self._user(), author)
        await self.post(author)

    async def _probe(self, until: float) -> None:
        """Poll each waiting post's viewer until it shows, or give up after PROBE_GIVE_UP."""
        while time.monotonic() < until:
            now = time.time()
            waiting: dict[int, list[AckedPost]] = {}
            for p in list(self.ledger.posts.values())[-2000:]:
                if p.visible_at is None and not p.deleted and now - p.acked_at < PROBE_GIVE_UP:
                    waiting.setdefault(p.probe_viewer, []).append(p)
            await asyncio.gather(*(self._probe_viewer(v, ps) for v, ps in waiting.items()))
            await asyncio.sleep(PROBE_EVERY)

    async def _probe_viewer(self, viewer: int, posts: list[AckedPost]) -> None:
        live = self.fleet.urls()
        if not live:
            return
        _, url = self.rng.choice(live)
        reply = await self.client.call(url, FEED, {"first": 50}, self.world.tokens[viewer])
        if reply.ok and reply.data:
            at = time.time()
            seen = {pk_of(e["node"]["id"]) for e in reply.data["homeFeed"]["edges"]}
            for p in posts:
                if p.pk in seen:
                    p.visible_at = at

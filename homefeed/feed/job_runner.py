"""The outbox's job runner: carrying each job (post, delete, drain, follow upkeep) into the timelines.

Posts of pushed authors go into every active follower's timeline; posts of
pulled authors (celebrities) go into one recent list that readers merge.
Follower lists bigger than a chunk are split into follower-id ranges that
several workers share. Every step is idempotent, so a job redone after a
crash changes nothing twice.

This module decides who receives what, from PostgreSQL; every timeline write is a
call to Feeds, given user and post ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from operator import itemgetter

import asyncpg

from homefeed.feed import modes
from homefeed.feed.feeds import Feeds
from homefeed.feed.live import Notices
from homefeed.feed.store import outbox
from homefeed.feed.store.outbox import Chunk, Job, Outbox

log = logging.getLogger(__name__)

# The range is repeated on users.id so the planner sees how many users a chunk spans: for a
# dense chunk (a big author's) it merge-joins one index range of users instead of hashing a
# sequential scan of the whole table. Ordered, so a cursor streams it: rows come as the merge join makes them.
_ACTIVE_FOLLOWERS = """
SELECT f.follower_id
FROM followers f JOIN users u ON u.id = f.follower_id
WHERE f.followee_id = $1 AND f.follower_id > $2 AND f.follower_id <= $3
  AND u.id > $2 AND u.id <= $3
  AND u.last_seen_at >= now() - make_interval(days => $4)
ORDER BY f.follower_id
"""
# Followers fetched per cursor step: PostgreSQL computes the next step while Redis takes this one.
STREAM = 2048

# Every step-th follower id: one ordered index-only scan folded into an array, then indexed
# (cheaper than numbering every row with a window function).
_BOUNDARIES = """
SELECT s.a[i] AS follower_id
FROM (SELECT array_agg(follower_id ORDER BY follower_id) AS a FROM followers WHERE followee_id = $1) s,
     generate_series($2::bigint, coalesce(cardinality(s.a), 0), $2::bigint) AS i
ORDER BY i
"""


_FIRST = itemgetter(0)


class JobRunner:
    """Carries out outbox jobs."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        feeds: Feeds,
        queue: Outbox,
        notices: Notices,
        *,
        threshold: float,
        active_days: int,
        chunk: int,
    ) -> None:
        self._pool = pool
        self._feeds = feeds
        self._outbox = queue
        self._notices = notices
        self._threshold = threshold
        self._active_days = active_days
        self._chunk = chunk

    async def handle(self, job: Job) -> None:
        """Carry out one job."""
        match job.kind:
            case outbox.POST | outbox.POST_CHUNK:
                await self._post(job)
            case outbox.DELETE:
                await self._delete(job)
            case outbox.DRAIN_CHUNK:
                await self._drain(job)
            case outbox.FOLLOW | outbox.UNFOLLOW:
                await self._feeds.sync_pair(job.actor_id, job.subject_id)
            case outbox.BLOCK:
                await self._feeds.sync_pair(job.actor_id, job.subject_id)
                await self._feeds.sync_pair(job.subject_id, job.actor_id)
            case _:
                log.error("dropping outbox job %d of unknown kind %r", job.id, job.kind)

    # ---- posts --------------------------------------------------------------------------------

    async def _post(self, job: Job) -> None:
        author, post_id = job.actor_id, job.subject_id
        row = await self._pool.fetchrow(
            """SELECT p.deleted_at IS NOT NULL AS deleted, u.follower_count, u.fanout_mode
               FROM posts p JOIN users u ON u.id = p.author_id
               WHERE p.author_id = $1 AND p.id = $2""",
            author,
            post_id,
        )
        if row is None or row["deleted"]:
            return
        feeds = self._feeds
        if job.kind == outbox.POST_CHUNK:
            # The parent decided the mode; chunks only carry it out.
            await self._each_follower(job, lambda users: feeds.push(users, post_id))
            lo, hi = job.range_lo, job.range_hi
            await self._notices.post_reached(
                author, post_id, -1 if lo is None else lo, -1 if hi is None else hi, False
            )
            return
        mode = await self._settle_mode(author, row["fanout_mode"], row["follower_count"], post_id)
        if modes.is_pulled(mode):
            await feeds.push_recent(author, post_id)
        reached_all = True
        if modes.is_pushed(mode):
            await feeds.push([author], post_id)
            if await self._split_if_big(job, outbox.POST_CHUNK, row["follower_count"]):
                reached_all = modes.is_pulled(mode)  # the chunks announce their own followers
            else:
                await self._each_follower(job, lambda users: feeds.push(users, post_id))
        await self._notices.post_reached(author, post_id, -1, outbox.MAX_ID if reached_all else -1, True)

    @property
    def size(self) -> int:
        return self._feeds.size

    async def _settle_mode(self, author: int, mode: int, followers: int, post_id: int) -> int:
        """Move the author to the mode their follower count calls for; returns the mode now in force."""
        wanted = modes.next_mode(mode, followers, self._threshold)
        if wanted == modes.DRAINING and mode == modes.DRAINING:
            if not await self._drain_pending(author):
                await self._finish_drain(author)
                return modes.PUSH
            return mode
        if wanted == mode:
            return mode
        if wanted == modes.PULL:
            # Entering PULL from PUSH: posts from this one on are pulled, so a later drain knows
            # where to start. Back from DRAINING, keep the earlier start: those posts still count.
            await self._pool.execute(
                """UPDATE users SET fanout_mode = 1,
                       pull_from = CASE WHEN fanout_mode = 0 THEN $2 ELSE coalesce(pull_from, $2) END
                   WHERE id = $1""",
                author,
                post_id,
            )
            return modes.PULL
        # PULL -> DRAINING: backfill what was pulled into followers' timelines, then PUSH.
        await self._pool.execute("UPDATE users SET fanout_mode = 2 WHERE id = $1 AND fanout_mode = 1", author)
        await self._outbox.split(
            Job(0, outbox.DRAIN_CHUNK, author, 0, None, None, 0),
            outbox.DRAIN_CHUNK,
            await self._chunks(author, followers),
        )
        return modes.DRAINING

    # ---- deletes --------------------------------------------------------------------------------

    async def _delete(self, job: Job) -> None:
        await self._feeds.unlist_recent(job.actor_id, job.subject_id)

    # ---- leaving PULL -------------------------------------------------------------------------------

    async def _drain(self, job: Job) -> None:
        author = job.actor_id
        pull_from = await self._pool.fetchval("SELECT pull_from FROM users WHERE id = $1", author)
        if pull_from is not None:
            rows = await self._pool.fetch(
                """SELECT id FROM posts WHERE author_id = $1 AND id >= $2 AND deleted_at IS NULL
                   ORDER BY id DESC LIMIT $3""",
                author,
                pull_from,
                self.size + 1,
            )
            ids = [r["id"] for r in rows]
            more_before = len(ids) > self.size
            feeds = self._feeds

            # Leaving PULL is rare, so one rewrite per follower (a merge, see Feeds.backfill)
            # is affordable.
            async def backfill(users: Sequence[int]) -> None:
                await feeds.backfill(users, ids[: self.size], more_before=more_before)

            if job.range_lo is None or job.range_lo < 0:
                await backfill([author])
            await self._each_follower(job, backfill)
        if await self._outbox.others_of(job) == 0:
            await self._finish_drain(author)

    async def _drain_pending(self, author: int) -> bool:
        pending: bool = await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE actor_id = $1 AND kind = $2)",
            author,
            outbox.DRAIN_CHUNK,
        )
        return pending

    async def _finish_drain(self, author: int) -> None:
        await self._pool.execute(
            "UPDATE users SET fanout_mode = 0, pull_from = NULL WHERE id = $1 AND fanout_mode = 2", author
        )

    # ---- followers --------------------------------------------------------------------------------

    async def _split_if_big(self, job: Job, chunk_kind: str, followers: int) -> bool:
        """Replace a job over many followers by chunk jobs; True if it was split."""
        if followers <= self._chunk:
            return False
        await self._outbox.split(job, chunk_kind, await self._chunks(job.actor_id, followers))
        return True

    async def _chunks(self, author: int, followers: int) -> list[Chunk]:
        step = max(self._chunk, math.ceil(followers / 10_000))
        bounds = [r["follower_id"] for r in await self._pool.fetch(_BOUNDARIES, author, step)]
        edges = [-1, *bounds, outbox.MAX_ID]
        return [Chunk(lo, hi) for lo, hi in itertools.pairwise(edges) if lo < hi]

    async def _each_follower(self, job: Job, action: Callable[[Sequence[int]], Awaitable[object]]) -> None:
        """Run action over the job's active followers' user ids, a cursor step at a time.

        The follower query and the Redis writes overlap: while one step's followers are being
        written to, the next step is fetched, so neither server waits for the other.
        """
        lo = job.range_lo if job.range_lo is not None else -1
        hi = job.range_hi if job.range_hi is not None else outbox.MAX_ID
        writing: asyncio.Task[object] | None = None
        try:
            async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                cursor = await conn.cursor(_ACTIVE_FOLLOWERS, job.actor_id, lo, hi, self._active_days)
                while rows := await cursor.fetch(STREAM):
                    users = list(map(_FIRST, rows))
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(action(users))
            if writing is not None:
                await writing
        finally:
            # A failed fetch still lets the write in flight finish: cancelling it mid-pipeline would
            # leave replies unread on the writer's connection. The job is redone anyway.
            if writing is not None and not writing.done():
                with contextlib.suppress(Exception):
                    await writing

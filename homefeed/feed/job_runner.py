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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from operator import itemgetter

import asyncpg
from redis.exceptions import RedisError

from homefeed.feed import modes
from homefeed.feed.feeds import Feeds
from homefeed.feed.ids import id_ms
from homefeed.feed.live import Notices
from homefeed.feed.metrics import FANOUT_LAG
from homefeed.feed.store import outbox
from homefeed.feed.store.outbox import Chunk, Job, Outbox

log = logging.getLogger(__name__)

# The range is repeated on users.id so the planner sees how many users a chunk spans: for a
# dense chunk (a big author's) it merge-joins one index range of users instead of hashing a
# sequential scan of the whole table; for a sparse one it probes once per follower. Either way
# activity is read from users_activity (id, last_seen_at), index-only: visiting each follower's
# wide users row was most of this statement's cost, and grew with the number of users (migration
# 0007). Ordered, so a cursor streams it: rows come as the join makes them.
ACTIVE_FOLLOWERS = """
SELECT f.follower_id
FROM followers f JOIN users u ON u.id = f.follower_id
WHERE f.followee_id = $1 AND f.follower_id > $2 AND f.follower_id <= $3
  AND u.id > $2 AND u.id <= $3
  AND u.last_seen_at >= now() - make_interval(days => $4)
ORDER BY f.follower_id
"""
# Followers fetched per cursor step: PostgreSQL computes the next step while Redis takes this one.
STREAM = 2048
# Cursor steps whose writes may be in flight at once (see JobRunner._each_follower).
WRITES_IN_FLIGHT = 3

# Every step-th follower id: one ordered index-only scan folded into an array, then indexed
# (cheaper than numbering every row with a window function).
_BOUNDARIES = """
SELECT s.a[i] AS follower_id
FROM (SELECT array_agg(follower_id ORDER BY follower_id) AS a FROM followers WHERE followee_id = $1) s,
     generate_series($2::bigint, coalesce(cardinality(s.a), 0), $2::bigint) AS i
ORDER BY i
"""


_FIRST = itemgetter(0)


def _observe_lag(post_id: int) -> None:
    """Fan-out lag: from the post's commit (its id is minted then) to now, once per job."""
    # Ids come from PostgreSQL's clock: a worker's clock a little behind must not go negative.
    FANOUT_LAG.observe(max(0.0, time.time() - id_ms(post_id) / 1000))


class UnknownJobKind(Exception):
    """A job this release does not know how to run (written by a newer one, or by hand)."""


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
                # Never dropped silently: the worker retries it and, out of attempts, moves it to
                # the dead-letter table (`homefeed jobs`), where a newer release can retry it.
                raise UnknownJobKind(f"outbox job {job.id} has unknown kind {job.kind!r}")

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
            _observe_lag(post_id)
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
            own_failure = await self._tolerated(feeds.push([author], post_id))
            if await self._split_if_big(job, outbox.POST_CHUNK, row["follower_count"]):
                reached_all = modes.is_pulled(mode)  # the chunks announce their own followers
            else:
                await self._each_follower(job, lambda users: feeds.push(users, post_id))
            if own_failure is not None:
                raise own_failure
        if reached_all:
            # Followers read it now (their timelines, or the pulled list); split chunks observe their own.
            _observe_lag(post_id)
        await self._notices.post_reached(author, post_id, -1, outbox.MAX_ID if reached_all else -1, True)

    @property
    def size(self) -> int:
        return self._feeds.size

    async def _settle_mode(self, author: int, mode: int, followers: int, post_id: int) -> int:
        """Move the author to the mode their follower count calls for; returns the mode placing this post.

        Every change commits with what it needs, under the author's row lock, so racing workers
        take turns and a fault between two statements rolls all of them back: the move to
        DRAINING inserts its drain jobs in the same transaction, and a drain ends only when its
        last chunk finds no other left (`_drain_done`).
        """
        if mode == modes.PUSH and modes.next_mode(mode, followers, self._threshold) == modes.PUSH:
            # The common case, read without a lock: a post in followers' timelines is where readers
            # look in every mode, so a transition racing this job cannot strand it.
            return modes.PUSH
        # Boundaries read before the lock, so follows of a big author wait for no array_agg; the
        # ranges cover every follower id whatever changes meanwhile.
        chunks = None
        if modes.next_mode(mode, followers, self._threshold) == modes.DRAINING:
            chunks = await self._chunks(author, followers)
        async with self._pool.acquire() as conn, conn.transaction():
            # NO KEY UPDATE: the author's own inserts (posts, follows: foreign-key checks) go on.
            locked = await conn.fetchrow(
                "SELECT fanout_mode, follower_count FROM users WHERE id = $1 FOR NO KEY UPDATE", author
            )
            if locked is None:
                return mode
            mode, followers = locked["fanout_mode"], locked["follower_count"]
            wanted = modes.next_mode(mode, followers, self._threshold)
            if wanted == modes.PULL:
                # This post is placed by pulling alone, so the drain that ends this pulled period
                # must copy it: lower pull_from to it, whatever the order jobs run in. A retried
                # earlier post found PULL after a later one started it; its id is then below the
                # start, and only lowering (not the first job's id) covers it. A drain copies
                # from PostgreSQL, and starts after this commit (its jobs are inserted under this
                # lock), so it sees the lowered start and the post.
                await conn.execute(
                    """UPDATE users SET fanout_mode = 1,
                           pull_from = CASE WHEN fanout_mode = 0 THEN $2 ELSE least(pull_from, $2) END
                       WHERE id = $1 AND (fanout_mode <> 1 OR pull_from IS NULL OR pull_from > $2)""",
                    author,
                    post_id,
                )
                return modes.PULL
            if wanted == modes.DRAINING:
                # From PULL: start the drain. Already DRAINING with no drain job left (a chunk
                # buried as a dead letter): drain again rather than declare it done, since
                # nothing says the pulled posts were copied.
                if mode == modes.PULL or not await outbox.any_of(conn, author, outbox.DRAIN_CHUNK):
                    await conn.execute("UPDATE users SET fanout_mode = 2 WHERE id = $1", author)
                    if chunks is None:
                        chunks = await self._chunks(author, followers, conn)
                    await outbox.insert_chunks(conn, outbox.DRAIN_CHUNK, author, 0, chunks)
                return modes.DRAINING
            return wanted

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
        await self._drain_done(job)

    async def _drain_done(self, job: Job) -> None:
        """Delete a finished drain chunk; if none of the author's is left, the author is pushed again.

        Decided from the table, under the author's row lock: the chunk deletes itself (not at its
        batch's end, where finished siblings would still count and no chunk would see itself
        last), and a move to DRAINING inserts its chunks under the same lock, so "none left"
        means every chunk of every drain since the last pulled post has copied its followers.
        """
        author = job.actor_id
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", author)
            await outbox.remove(conn, job.id)
            # A fresh snapshot, taken after the lock: it sees what racing chunks committed.
            if not await outbox.any_of(conn, author, outbox.DRAIN_CHUNK):
                await conn.execute(
                    "UPDATE users SET fanout_mode = 0, pull_from = NULL WHERE id = $1 AND fanout_mode = 2",
                    author,
                )

    # ---- followers --------------------------------------------------------------------------------

    async def _split_if_big(self, job: Job, chunk_kind: str, followers: int) -> bool:
        """Replace a job over many followers by chunk jobs; True if it was split."""
        if followers <= self._chunk:
            return False
        await self._outbox.split(job, chunk_kind, await self._chunks(job.actor_id, followers))
        return True

    async def _chunks(self, author: int, followers: int, conn: outbox.Conn | None = None) -> list[Chunk]:
        step = max(self._chunk, math.ceil(followers / 10_000))
        rows = await (self._pool if conn is None else conn).fetch(_BOUNDARIES, author, step)
        bounds = [r["follower_id"] for r in rows]
        edges = [-1, *bounds, outbox.MAX_ID]
        return [Chunk(lo, hi) for lo, hi in itertools.pairwise(edges) if lo < hi]

    async def _tolerated(self, write: Awaitable[object]) -> Exception | None:
        """Await a timeline write; on a cluster, a failed master's error is returned, not raised.

        The job then goes on to the followers on the other masters and fails at its end (to be
        retried): while one master is down, the others' followers see the post at once instead
        of after its failover. On a single server the first failure ends the job.
        """
        try:
            await write
        except (RedisError, OSError) as exc:
            if self._feeds.slots is None:
                raise
            return exc
        return None

    async def _each_follower(self, job: Job, action: Callable[[Sequence[int]], Awaitable[object]]) -> None:
        """Run action over the job's active followers' user ids, a cursor step at a time.

        The follower query and the Redis writes overlap: while steps' followers are being
        written to, the next step is fetched, so neither server waits for the other. Up to
        WRITES_IN_FLIGHT steps are written at once: on a cluster each master then takes its share
        of the next step as soon as it is done with its own, instead of every master waiting for
        the slowest one at each step (the writer still sends one pipeline at a time per master).
        """
        lo = job.range_lo if job.range_lo is not None else -1
        hi = job.range_hi if job.range_hi is not None else outbox.MAX_ID
        writing: deque[asyncio.Task[object]] = deque()
        failure: Exception | None = None
        try:
            async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                cursor = await conn.cursor(ACTIVE_FOLLOWERS, job.actor_id, lo, hi, self._active_days)
                while rows := await cursor.fetch(STREAM):
                    users = list(map(_FIRST, rows))
                    if len(writing) >= WRITES_IN_FLIGHT:
                        # Awaited even after a failure: a write left running would outlive its job.
                        error = await self._tolerated(writing.popleft())
                        failure = failure or error
                    writing.append(asyncio.ensure_future(action(users)))
            while writing:
                error = await self._tolerated(writing.popleft())
                failure = failure or error
            if failure is not None:
                raise failure
        finally:
            # A failed fetch still lets the writes in flight finish: cancelling one mid-pipeline would
            # leave replies unread on the writer's connection. The job is redone anyway. (Awaited even
            # when done, so no failure goes unretrieved.)
            for task in writing:
                with contextlib.suppress(Exception):
                    await task

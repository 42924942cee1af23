"""The visibility read: which of a viewer's candidate posts they may see, hydrated, batched.

Every hybrid read ends with one PostgreSQL statement that filters its candidates (deleted,
unfollowed, muted, blocked either way) and hydrates the survivors with their authors and the
viewer's likes. That statement has a fixed PostgreSQL CPU cost however few candidates it has
(locks on six tables and their indexes, executor start-up, the protocol), and the API process
a round trip: with a statement per read, reads spent most of their time queued for it. Here
concurrent reads share a statement: each read joins a queue; when the connection held for
them is free, everything queued goes out as one statement that runs the same filter once per
read (LATERAL), so the fixed costs are paid once per batch. A read that finds the connection
free goes out at once, so a quiet server adds no wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homefeed.feed.store.pool import Lanes

# Per read ($1 viewers, $2/$3 the 1-based bounds of its candidates in $5, $4 its limit): the
# newest visible candidates, each with whether the viewer likes it. Their authors are not joined
# here but looked up in the process (feed/authors.py): probing `users` per post was over a
# third of this statement's buffer reads. A visible post's author is followed by the viewer
# exactly when it is not the viewer. A read returns rows only if its viewer's user exists, so
# a read that finds any post has also authenticated them.
# The muted and blocked authors are listed once per read, not probed once per candidate. The
# follow check is a scalar subquery (true or null) so it stays one primary-key probe per row:
# written as EXISTS, PostgreSQL hashed all of the viewer's follows for every read.
VISIBLE = """
SELECT r.ord, x.*
FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[]) WITH ORDINALITY AS r(viewer, lo, hi, lim, ord)
CROSS JOIN LATERAL (
    SELECT p.id, p.author_id, p.text, p.like_count,
           EXISTS (SELECT 1 FROM likes l WHERE l.user_id = r.viewer AND l.post_id = p.id) AS liked
    FROM posts p
    WHERE p.id = ANY (($5::bigint[])[r.lo:r.hi]) AND p.deleted_at IS NULL
      AND EXISTS (SELECT 1 FROM users v WHERE v.id = r.viewer)
      AND (p.author_id = r.viewer
           OR (SELECT true FROM follows f WHERE f.follower_id = r.viewer AND f.followee_id = p.author_id))
      AND p.author_id <> ALL (ARRAY(
          SELECT muted_id FROM mutes WHERE muter_id = r.viewer
          UNION ALL SELECT blocked_id FROM blocks WHERE blocker_id = r.viewer
          UNION ALL SELECT blocker_id FROM blocks WHERE blocked_id = r.viewer))
    ORDER BY p.id DESC
    LIMIT r.lim
) x
"""
# The same on a replica, which may not have replayed every post a list names: each read also
# counts how many of its candidates the server has at all (a LEFT JOIN keeps a row for a read
# with nothing visible). Fewer than asked means some post is not there yet, and the read goes
# to the primary rather than dropping it. The count is joined once per read: as a subquery in
# the select list it ran once per row returned, which tripled the statement's buffer reads.
VISIBLE_CHECKED = (
    VISIBLE.replace("SELECT r.ord, x.*", "SELECT r.ord, x.*, k.known")
    .replace(
        "CROSS JOIN LATERAL (",
        "CROSS JOIN LATERAL (\n"
        "    SELECT count(*)::int AS known FROM posts q WHERE q.id = ANY (($5::bigint[])[r.lo:r.hi])\n"
        ") k\n"
        "LEFT JOIN LATERAL (",
        1,
    )
    .replace(") x\n", ") x ON true\n")
)


class NotReplicated(Exception):
    """A replica lacks some of a read's candidate posts: the primary must answer it."""


# Columns of a row after `ord`, in order.
COLUMNS = (
    "id",
    "author_id",
    "text",
    "like_count",
    "liked",
)
# Statements in flight at once per process, and reads per statement. One connection makes the
# largest batches; a second did not raise throughput (docs/benchmarks.md), the statement being
# far from the slowest step.
CONNECTIONS = 1
MAX_BATCH = 64
# The statement's generic plan is the right one for every batch, but PostgreSQL would plan each
# execution anew, at a cost far above the execution's: a custom plan, costed for the actual
# number of reads, always looks cheaper than the generic plan's guess of ten.
#
# Bitmap scans are off for it: costed for the generic plan's guess of 8 rows, the per-read look-ups
# of mutes, blocks and likes were bitmap scans, whose set-up costs more than the few index entries
# a viewer has there; they are index-only scans instead.
SESSION = {"plan_cache_mode": "force_generic_plan", "enable_bitmapscan": "off"}


@dataclass(slots=True)
class _Read:
    viewer: int
    ids: Sequence[int]
    limit: int
    rows: asyncio.Future[list[asyncpg.Record]]


class VisibleReads:
    """Visibility reads, batched onto a few held connections."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connections: int = CONNECTIONS,
        max_batch: int = MAX_BATCH,
        *,
        checked: bool = False,
        before_answers: Callable[[list[asyncpg.Record]], Awaitable[None]] | None = None,
    ) -> None:
        self._lanes = Lanes(pool, size=connections, session=SESSION)
        # Awaited with a batch's rows before any of its reads is answered (the feed reads the
        # authors it has not met): the batch's reads then resume together, in step, and their
        # next reads share a statement again. Answered one by one, a read that waited for its
        # authors came back alone and the statements batched fewer reads (docs/benchmarks.md).
        self._before_answers = before_answers
        # On a replica: reads whose candidates are not all there fail with NotReplicated.
        self._checked = checked
        self._slots = max(1, self._lanes.size)
        self.connections = self._lanes.size  # held (0: statements go through the pool)
        self._max_batch = max_batch
        self._queue: deque[_Read] = deque()
        self._running = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.batches = 0  # statements run

    async def rows(self, viewer: int, ids: Sequence[int], limit: int) -> list[asyncpg.Record]:
        """The visible posts among ids, newest first, at most `limit`: `ord` then COLUMNS, by position.

        Checked reads (replicas) raise NotReplicated if the server lacks any of `ids`.
        """
        if self._closing:
            raise RuntimeError("the feed's visibility reads are closed")
        loop = asyncio.get_running_loop()
        read = _Read(viewer, ids, limit, loop.create_future())
        self._queue.append(read)
        if self._running < self._slots and not self._scheduled:
            # Reads queued in this turn of the loop go out together.
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await read.rows

    def _dispatch(self) -> None:
        self._scheduled = False
        while self._queue and self._running < self._slots:
            batch: list[_Read] = []
            while self._queue and len(batch) < self._max_batch:
                read = self._queue.popleft()
                if not read.rows.done():  # its request was cancelled meanwhile
                    batch.append(read)
            if not batch:
                return
            self._running += 1
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Read]) -> None:
        released = False
        try:
            viewers: list[int] = []
            lows: list[int] = []
            highs: list[int] = []
            limits: list[int] = []
            candidates: list[int] = []
            for read in batch:
                viewers.append(read.viewer)
                lows.append(len(candidates) + 1)
                candidates.extend(read.ids)
                highs.append(len(candidates))
                limits.append(read.limit)
            try:
                statement = VISIBLE_CHECKED if self._checked else VISIBLE
                rows = await self._lanes.fetch(statement, viewers, lows, highs, limits, candidates)
                self.batches += 1
                if self._before_answers is not None and rows:
                    # The connection is free for the next batch while this one waits.
                    released = True
                    self._release()
                    await self._before_answers(rows)
            except BaseException as exc:
                error = exc if isinstance(exc, Exception) else ConnectionError("the feed reads were stopped")
                for read in batch:
                    if not read.rows.done():
                        read.rows.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
                return
            if self._checked:
                self._answer_checked(batch, rows)
                return
            answers: list[list[asyncpg.Record]] = [[] for _ in batch]
            for row in rows:
                answers[row[0] - 1].append(row)
            for read, answer in zip(batch, answers, strict=True):
                if not read.rows.done():
                    read.rows.set_result(answer)
        finally:
            if not released:
                self._release()

    def _release(self) -> None:
        self._running -= 1
        if self._queue:
            self._dispatch()

    @staticmethod
    def _answer_checked(batch: list[_Read], rows: list[asyncpg.Record]) -> None:
        # Rows keep the unchecked shape (`ord`, then COLUMNS) so readers need not tell them apart.
        answers: list[list[Any]] = [[] for _ in batch]
        known = [0] * len(batch)
        width = 1 + len(COLUMNS)
        for row in rows:
            index = row[0] - 1
            known[index] = row[width]
            if row[1] is not None:
                answers[index].append(row[:width])
        for read, answer, have in zip(batch, answers, known, strict=True):
            if read.rows.done():
                continue
            if have < len(set(read.ids)):
                read.rows.set_exception(NotReplicated(f"{len(set(read.ids)) - have} posts not replayed"))
            else:
                read.rows.set_result(answer)

    async def close(self) -> None:
        """Answer the reads already asked for, refuse new ones, and give the connections back."""
        self._closing = True
        while self._tasks or self._queue:
            if not self._tasks:
                self._dispatch()  # queued in this turn of the loop, not yet sent
                if not self._tasks:
                    break  # only cancelled reads were left
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._lanes.close()

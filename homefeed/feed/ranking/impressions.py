"""Sampled impression logging, batched off the request path.

A served feed page is logged with probability HOMEFEED_IMPRESSION_SAMPLE_PERCENT: one row per
post (viewer, post, position, order, time). Recording only appends to an in-process queue; a
background task writes the queue every second with COPY, computing each logged page's features
(the ranker's) as they were when it was shown, every page of a flush in one statement, so a model trains on
what the ranker saw and never on likes that came after. A ranked first page hands over the
features it was ranked with, so logging it reads nothing again. The queue is bounded
(HOMEFEED_IMPRESSION_QUEUE impressions): past it, pages are dropped and counted, so logging can
never hold memory or slow reads when PostgreSQL falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from homefeed.feed.metrics import IMPRESSIONS
from homefeed.feed.ranking.features import read_impressions

log = logging.getLogger(__name__)

LATEST, RANKED = 0, 1
FLUSH_EVERY_SECONDS = 1.0
# Most impressions whose features one statement reads: a flush reads its pages in one statement
# up to this many (the default queue bound holds at most one statement's worth).
READ_ROWS = 10_000
COLUMNS = ("viewer_id", "post_id", "position", "feed_order", "shown_at", "features")

_QUEUED = IMPRESSIONS.labels("queued")
_DROPPED = IMPRESSIONS.labels("dropped")
_WRITTEN = IMPRESSIONS.labels("written")
_FAILED = IMPRESSIONS.labels("failed")


@dataclass(frozen=True, slots=True)
class ShownPage:
    """The posts of one served page, in the order shown, with their positions in the feed."""

    viewer: int
    order: int
    post_ids: tuple[int, ...]
    positions: tuple[int, ...]
    shown_ms: int
    # The model inputs per post, when the ranker gave them (a ranked first page); else they are
    # read when the page is written.
    features: list[list[float]] | None = None


class ImpressionLog:
    """Samples served pages and writes their impressions in the background."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sample_percent: int,
        queue_limit: int,
        *,
        rng: random.Random | None = None,
        flush_every: float = FLUSH_EVERY_SECONDS,
    ) -> None:
        self._pool = pool
        self.sample = sample_percent / 100
        self.limit = queue_limit
        self._rng = rng or random.Random()
        self._every = flush_every
        self._pages: list[ShownPage] = []
        self.queued = 0  # impressions waiting
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def record(
        self,
        viewer: int,
        order: int,
        post_ids: Sequence[int],
        positions: Sequence[int] | None = None,
        features: Callable[[], list[list[float]]] | None = None,
    ) -> bool:
        """Maybe log a served page (sampled, bounded); never waits. True when it was queued.

        Positions default to the places on the page (0 first). `features`, when given, gives
        each post's model inputs as the ranker scored them (called only for a sampled page):
        then the write reads nothing for the page."""
        if not post_ids or self._closed or self.sample <= 0 or self._rng.random() >= self.sample:
            return False
        if self.queued + len(post_ids) > self.limit:
            _DROPPED.inc(len(post_ids))
            return False
        places = tuple(range(len(post_ids))) if positions is None else tuple(positions)
        rows = None if features is None else features()
        if rows is not None and len(rows) != len(post_ids):
            raise ValueError("one row of features per post")
        self._pages.append(ShownPage(viewer, order, tuple(post_ids), places, int(time.time() * 1000), rows))
        self.queued += len(post_ids)
        _QUEUED.inc(len(post_ids))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await self.flush()

    async def flush(self) -> int:
        """Write what is queued now; the impressions written (a failed batch is counted and dropped)."""
        pages, self._pages, self.queued = self._pages, [], 0
        if not pages:
            return 0
        count = sum(len(p.post_ids) for p in pages)
        try:
            rows = await self._rows(pages)
            await self._pool.copy_records_to_table("impressions", records=rows, columns=COLUMNS)
        except (asyncpg.PostgresError, OSError) as exc:
            _FAILED.inc(count)
            log.warning("%d impressions not logged: %s", count, exc)
            return 0
        _WRITTEN.inc(len(rows))
        return len(rows)

    async def _rows(self, pages: list[ShownPage]) -> list[tuple[object, ...]]:
        # Each page's features: given (a ranked first page), else read, all pages in one statement
        # (at most READ_ROWS impressions each).
        given: list[list[list[float] | None]] = [
            [] if page.features is None else list(page.features) for page in pages
        ]
        unread = [k for k, page in enumerate(pages) if page.features is None]
        for chunk in _chunks(unread, pages, READ_ROWS):
            viewers: list[int] = []
            post_ids: list[int] = []
            shown: list[int] = []
            for k in chunk:
                page = pages[k]
                viewers += [page.viewer] * len(page.post_ids)
                post_ids += page.post_ids
                shown += [page.shown_ms] * len(page.post_ids)
            at, matrix = await read_impressions(self._pool, viewers, post_ids, shown)
            found: list[list[float] | None] = [None] * len(post_ids)
            for place, x in zip(at.tolist(), matrix.tolist(), strict=True):
                found[place] = x
            start = 0
            for k in chunk:
                end = start + len(pages[k].post_ids)
                given[k] = found[start:end]
                start = end
        rows: list[tuple[object, ...]] = []
        for page, features in zip(pages, given, strict=True):
            shown_at = datetime.fromtimestamp(page.shown_ms / 1000, tz=UTC)
            for post_id, position, x in zip(page.post_ids, page.positions, features, strict=True):
                if x is not None:  # the post exists (deleted since or not: it was shown)
                    rows.append((page.viewer, post_id, position, page.order, shown_at, x))
        return rows

    async def close(self) -> None:
        """Stop the background task and write what is left."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


def _chunks(picked: list[int], pages: list[ShownPage], most: int) -> list[list[int]]:
    """The picked pages in runs of at most `most` impressions (a larger page is a run alone)."""
    runs: list[list[int]] = []
    run: list[int] = []
    size = 0
    for k in picked:
        n = len(pages[k].post_ids)
        if run and size + n > most:
            runs.append(run)
            run, size = [], 0
        run.append(k)
        size += n
    if run:
        runs.append(run)
    return runs

"""Sampled impression logging, batched off the request path.

A served feed page is logged with probability HOMEFEED_IMPRESSION_SAMPLE_PERCENT: one row per
post (viewer, post, position, order, time). Recording only appends to an in-process queue; a
background task writes the queue every second with COPY, computing each logged page's features
(the ranker's, one statement per page) as they were when it was shown, so a model trains on
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
from homefeed.feed.ranking.features import read_features

log = logging.getLogger(__name__)

LATEST, RANKED = 0, 1
FLUSH_EVERY_SECONDS = 1.0
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
        rows: list[tuple[object, ...]] = []
        for page in pages:
            if page.features is not None:
                by_id = dict(zip(page.post_ids, page.features, strict=True))
            else:
                features = await read_features(self._pool, page.viewer, page.post_ids, page.shown_ms)
                by_id = dict(zip(features.ids.tolist(), features.matrix(page.viewer).tolist(), strict=True))
            shown = datetime.fromtimestamp(page.shown_ms / 1000, tz=UTC)
            for post_id, position in zip(page.post_ids, page.positions, strict=True):
                x = by_id.get(post_id)
                if x is not None:  # the post exists (deleted since or not: it was shown)
                    rows.append((page.viewer, post_id, position, page.order, shown, x))
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

"""Pages of the RANKED home feed.

The first page (no cursor) takes its candidates from the ids a LATEST read merges (the timeline
and pulled lists in Redis; PostgreSQL when they cannot vouch for the window), filters them and
reads their features in one statement, scores them
(model or heuristic), re-ranks them (diversity, guaranteed slots) and stores the whole order as
a snapshot; its cursors name the snapshot and a position. Later pages read the snapshot, so they
never repeat or skip one of its posts whatever is posted or liked meanwhile; posts deleted or
hidden since are dropped at read, and the page is filled from further down. Past the snapshot
the feed continues in LATEST order below its oldest candidate, so it ends only where history does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import asyncpg
import numpy as np
from redis.exceptions import RedisError

from homefeed.feed.config import Settings
from homefeed.feed.errors import InvalidInput, RateLimited
from homefeed.feed.feeds import Feeds, check_first
from homefeed.feed.ids import lowest_id_at
from homefeed.feed.metrics import RATE_LIMITED
from homefeed.feed.ranking.features import I64, Candidates, no_candidates, read_among, read_candidates
from homefeed.feed.ranking.rerank import rerank
from homefeed.feed.ranking.scoring import Scorer
from homefeed.feed.ranking.snapshots import NO_FLOOR, Snapshot, Snapshots, name_of
from homefeed.feed.records import Page, Post

log = logging.getLogger(__name__)

EXPIRED = "ranked cursor expired; start from the first page"
# A snapshot that could not be read (Redis failing or timing out) is not an expired one: the
# cursor stays good, so the answer is the service's retry-later one (RATE_LIMITED, retryAfter).
UNAVAILABLE = "ranked feed briefly unavailable; retry this page in a second"
SNAPSHOT_RETRY_AFTER = 1


@dataclass(frozen=True)
class RankedPage:
    """A page of the ranked feed: per post (aligned with page.post_ids) its snapshot position and
    score, both None for posts past the snapshot (LATEST order, whose cursor is the post id)."""

    page: Page
    snapshot: str | None
    positions: list[int | None]
    scores: list[float | None]
    # The model inputs the ranker scored the page's ranked posts with (rows in page order, posts
    # past the snapshot left out), when this request computed them (a first page): a sampled
    # impression logs these instead of reading them again. Called only for a sampled page.
    features: Callable[[], list[list[float]]] | None = None


class Ranker:
    """Answers RANKED pages for one process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        feeds: Feeds,
        snapshots: Snapshots,
        scorer: Scorer,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._feeds = feeds
        self.snapshots = snapshots
        self.scorer = scorer
        self.window_ms = settings.ranked_window_hours * 3_600_000
        self.cap = settings.ranked_candidates
        self.clock = clock

    async def first(self, viewer: int, first: int) -> RankedPage:
        """The first page: rank the candidates now and keep the order as a snapshot."""
        check_first(first)
        now_ms = int(self.clock() * 1000)
        candidates = await self._candidates(viewer, now_ms)
        scores = self.scorer.score(candidates, viewer)
        order = np.asarray(rerank(candidates, scores, first), dtype=np.int64)
        floor = int(candidates.ids.min()) if len(candidates) else NO_FLOOR
        snapshot = Snapshot(candidates.ids[order], scores[order], floor)
        name = name_of(viewer, snapshot)
        # The page is made while the snapshot is stored: nothing in it depends on the write.
        stored, ranked = await asyncio.gather(
            self._put(viewer, name, snapshot), self._shown(viewer, first, name, snapshot, candidates, order)
        )
        if not stored:
            # No snapshot, no stable later pages: answer in LATEST order, whose cursors need none.
            return await self.below(viewer, first, None)
        shown = order[[p for p in ranked.positions if p is not None]]

        def features() -> list[list[float]]:
            rows: list[list[float]] = candidates.take(shown).matrix(viewer).tolist()
            return rows

        return replace(ranked, features=features)

    async def _put(self, viewer: int, name: str, snapshot: Snapshot) -> bool:
        """Store the snapshot; False (logged) when Redis cannot take it."""
        try:
            await self.snapshots.put(viewer, name, snapshot)
        except (RedisError, OSError) as exc:
            log.warning("ranked feed in LATEST order, Redis unavailable: %s", exc)
            return False
        return True

    async def _candidates(self, viewer: int, now_ms: int) -> Candidates:
        """The candidates from what a LATEST read merges (the timeline and the pulled lists),
        filtered and with their features in one statement; from PostgreSQL alone when Redis
        cannot vouch for the whole window. Both give the same candidates (the invariant test
        ranks in worlds whose Redis is flushed or whose lists are trimmed)."""
        lowest = lowest_id_at(now_ms - self.window_ms)
        window = await self._feeds.window(viewer, lowest)
        if window is not None:
            if not window.ids and window.whole:
                return no_candidates(now_ms)
            found = await read_among(self._feeds.lanes, viewer, window.ids, now_ms, self.cap)
            # Below the lists' floor PostgreSQL may know more, unless the cap is already met.
            if window.whole or len(found) >= self.cap:
                return found
        return await read_candidates(self._feeds.lanes, viewer, now_ms, self.window_ms, self.cap)

    async def at(self, viewer: int, first: int, name: str, position: int) -> RankedPage:
        """The page from a position of a snapshot; InvalidInput once the snapshot has expired."""
        check_first(first)
        try:
            snapshot = await self.snapshots.get(viewer, name)
        except (RedisError, OSError) as exc:
            # Not expiry: the snapshot may well be there, and "expired" would send the reader back
            # to the first page, losing their place. Retrying the same cursor shortly keeps it.
            log.warning("ranked snapshot unreadable, Redis unavailable: %s", exc)
            RATE_LIMITED.labels("ranked_snapshot").inc()
            raise RateLimited(UNAVAILABLE, retry_after=SNAPSHOT_RETRY_AFTER) from None
        except ValueError:
            raise InvalidInput("malformed cursor") from None
        if snapshot is None:
            raise InvalidInput(EXPIRED)
        if not 0 <= position < len(snapshot.ids) + 1:
            raise InvalidInput("malformed cursor")
        return await self._from(viewer, first, name, snapshot, position)

    async def below(self, viewer: int, first: int, before: int | None) -> RankedPage:
        """Past the snapshot: LATEST order below a post id."""
        page = await self._feeds.home(viewer, first, before)
        n = len(page.post_ids)
        return RankedPage(page, None, [None] * n, [None] * n)

    async def _shown(
        self, viewer: int, first: int, name: str, snapshot: Snapshot, candidates: Candidates, order: I64
    ) -> RankedPage:
        """The first page: the snapshot's top posts as the features statement read them. They are
        the posts the viewer may see as of that statement, filtered as the visibility read filters
        (features.py), so a visibility read of them now would return the same posts: the page
        skips it, and the wait for its batched statement."""
        count = min(first + 1, len(order))  # one more than the page, to know if more exist
        pages: list[Page] = []
        if count:
            shown = candidates.shown
            assert shown is not None, "a first page's candidates come with what it shows"
            rows = order[:count]
            ids: list[int] = candidates.ids[rows].tolist()
            authors: list[int] = candidates.authors[rows].tolist()
            likes: list[int] = candidates.likes[rows].astype(np.int64).tolist()
            texts = shown.texts
            posts = [
                Post(post_id, author, texts[row], like_count)
                for post_id, author, row, like_count in zip(ids, authors, rows.tolist(), likes, strict=True)
            ]
            liked = set(shown.liked.tolist()).intersection(ids)
            pages.append(await self._feeds.shown_page(viewer, posts, liked))
        return await self._page(viewer, first, name, snapshot, list(range(count)), pages)

    async def _from(self, viewer: int, first: int, name: str, snapshot: Snapshot, start: int) -> RankedPage:
        """`first` visible posts of the snapshot from `start` (and one more, to know if more exist),
        then LATEST order below the snapshot's floor when it runs out."""
        want = first + 1
        ids = snapshot.ids
        picked: list[int] = []  # snapshot positions
        pages: list[Page] = []
        position = start
        while len(picked) < want and position < len(ids):
            need = want - len(picked)
            chunk: list[int] = ids[position : position + need + need // 4 + 4].tolist()
            visible = await self._feeds.visible_page(viewer, chunk)
            pages.append(visible)
            shown = set(visible.post_ids)
            for offset, post_id in enumerate(chunk):
                if post_id in shown and len(picked) < want:
                    picked.append(position + offset)
            position += len(chunk)
        return await self._page(viewer, first, name, snapshot, picked, pages)

    async def _page(
        self, viewer: int, first: int, name: str, snapshot: Snapshot, picked: list[int], pages: list[Page]
    ) -> RankedPage:
        """The page of the snapshot positions `picked` (visible, read into `pages`; one more than
        the page if more exist), then LATEST order below the snapshot's floor when it runs out."""
        ids, scores = snapshot.ids, snapshot.scores
        more = len(picked) > first
        picked = picked[:first]
        post_ids: list[int] = ids[picked].tolist()
        positions: list[int | None] = list(picked)
        page_scores: list[float | None] = scores[picked].tolist()
        rest = first - len(picked)
        if rest > 0 or not more:
            # The snapshot ran out: LATEST order below its oldest candidate fills the page and
            # tells whether anything is left.
            floor = None if snapshot.floor == NO_FLOOR else snapshot.floor
            latest = await self._feeds.home(viewer, max(rest, 1), floor)
            pages.append(latest)
            if rest > 0:
                post_ids += latest.post_ids
                positions += [None] * len(latest.post_ids)
                page_scores += [None] * len(latest.post_ids)
                more = latest.has_next
            else:
                more = bool(latest.post_ids)
        page = Page(
            post_ids,
            more,
            tuple(post for p in pages for post in p.posts),
            authors=tuple({a.id: a for p in pages for a in p.authors}.values()),
            liked=frozenset().union(*(p.liked or frozenset() for p in pages)),
            followed=frozenset().union(*(p.followed or frozenset() for p in pages)),
            viewer_known=True,
        )
        return RankedPage(page, name, positions, page_scores)

"""The feed manager: the one object that owns every timeline operation.

Every write to a home timeline or a pulled author's recent list goes through a method
of Feeds (fan-out's appends, backfills, removals, trims, rebuilds, seeding's bulk
write); its callers pass user and post ids and never name a key or encode an entry.

Reads merge the viewer's timeline with the recent lists of the pulled authors
they follow, then filter in PostgreSQL (deleted, unfollowed, blocked, muted)
and hydrate in the same query. Whatever Redis cannot vouch for (past the
bounded lists, a missing timeline, Redis down) is answered by the pull query,
which is the reference.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from operator import neg
from typing import TypeVar, cast

import asyncpg
from redis.exceptions import RedisError

from homefeed.feed import pulled_of
from homefeed.feed.ahead import Ahead
from homefeed.feed.breaker import Breaker, within
from homefeed.feed.config import Settings
from homefeed.feed.errors import InvalidInput
from homefeed.feed.metrics import CELEBRITY_CACHE, COLD_REBUILDS, PULL_FALLBACKS
from homefeed.feed.mixer import merge, merge_kept, window_of
from homefeed.feed.records import Page, Post, User
from homefeed.feed.redis_client import RedisClient, is_cluster
from homefeed.feed.replicas import Replicas
from homefeed.feed.store.authors import Authors
from homefeed.feed.store.pool import MAX_LANES, Lanes, lane_share
from homefeed.feed.store.posts import Posts
from homefeed.feed.store.pull import NO_UPPER_BOUND, pull_ids, timeline_ids
from homefeed.feed.store.users import Users
from homefeed.feed.store.visible import CONNECTIONS as VISIBLE_CONNECTIONS
from homefeed.feed.store.visible import VisibleReads
from homefeed.feed.timeline.cluster_reads import ClusterReads
from homefeed.feed.timeline.encoding import Blob, encode_id
from homefeed.feed.timeline.encoding import decode as decode_list
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import BOTTOM, IdLists, ListQuery, ListRead
from homefeed.feed.timeline.lists import below as list_below
from homefeed.feed.timeline.reads import RedisReads
from homefeed.feed.timeline.slots import SlotMap
from homefeed.feed.timeline.writes import BuiltTimeline, TimelineWrites

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PAGE = 100
# Rounds of reading below the floor before handing the rest to PostgreSQL.
MAX_ROUNDS = 4
# Refresh a reader's activity (PostgreSQL last_seen_at) at most this often.
TOUCH_EVERY_SECONDS = 3600
# Past this many pulled authors in all, the viewer's are found by a join instead of a list.
MAX_PULLED_LISTED = 1000
# How long a process keeps which pulled authors a viewer follows. A follow or unfollow bumps the
# viewer's version in Redis, which every read checks, so this only bounds how long a bump lost
# to a Redis failure can go unnoticed; the version key outlives any entry read before the bump.
PULLED_OF_SECONDS = 60
# How long the same, kept in Redis for every process (feed/pulled_of.py), lives; the version key
# outlives any entry computed before its bump.
PULLED_OF_KEPT_SECONDS = 600
FOLLOWS_VERSION_SECONDS = 2 * PULLED_OF_KEPT_SECONDS
MAX_PULLED_OF = 200_000
# A single-flight rebuild lock outlives any sane rebuild, but not a crashed one by much.
REBUILD_LOCK_MS = 10_000
# How long a process remembers an author's posts that it could not put in their own timeline
# (fan-out puts them there once Redis is back), and how many per author.
UNSYNCED_SECONDS = 600
UNSYNCED_PER_AUTHOR = 20
MAX_UNSYNCED_AUTHORS = 10_000
_new = tuple.__new__

# Label children bound once: the hot path only increments.
_HISTORY = PULL_FALLBACKS.labels("history")
_COLD = PULL_FALLBACKS.labels("cold")
_REBUILD_LIMIT = PULL_FALLBACKS.labels("rebuild_limit")
_REDIS_ERROR = PULL_FALLBACKS.labels("redis_error")
_BREAKER_OPEN = PULL_FALLBACKS.labels("breaker_open")
_CACHE_HIT = CELEBRITY_CACHE.labels("hit")
_CACHE_MISS = CELEBRITY_CACHE.labels("miss")

_EXISTS = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)"

# The read's first statement: whether the token's user exists (so the request needs no separate
# look-up) and which pulled authors the viewer reads, themselves included.
_VIEWER = """
SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AS known,
       ARRAY(SELECT id FROM users
             WHERE fanout_mode <> 0
               AND (id = $1 OR id IN (SELECT followee_id FROM follows WHERE follower_id = $1))) AS pulled
"""
# The same, given the process's list of every pulled author ($2): a few primary-key probes
# instead of probing users for each of the viewer's followees.
_VIEWER_AMONG = """
SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AS known,
       ARRAY(SELECT followee_id FROM follows
             WHERE follower_id = $1 AND followee_id = ANY($2::bigint[])) AS pulled
"""
_ALL_PULLED = "SELECT id FROM users WHERE fanout_mode <> 0"


def check_first(first: int) -> int:
    """A valid page size, or InvalidInput."""
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}")
    return first


# A kept value is read again in the background once this share of its lifetime has passed
# (feed/ahead.py), so readers find it fresh and none waits for it.
REFRESH_AT = 0.75


@dataclass(slots=True)
class _Cached:
    fetched: float  # when the read that found it was sent: its lifetime counts from there
    read: ListRead
    used: bool  # served since it was read: worth reading again before it expires


class RecentCache:
    """Pulled authors' whole recent lists, kept in process briefly so a hot celebrity is not a hot key.

    A list is served only within `ttl_ms` of when the read that found it was sent, refreshed
    ahead or not. Serving one past REFRESH_AT of that sets `due`: the feed then reads every
    list served since its last read again, together, in the background (Feeds._refresh_recent).
    """

    def __init__(self, ttl_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_ms / 1000
        self._ahead = self.ttl * REFRESH_AT
        self.clock = clock
        self._entries: dict[int, _Cached] = {}
        self._cleared = float("-inf")  # lists read before this are never kept (see clear)
        self.due = False

    def get(self, author: int) -> ListRead | None:
        return self.lists((author,))[0]

    def lists(self, authors: Sequence[int]) -> list[ListRead | None]:
        """Each author's kept list, or None (never kept, or past its lifetime)."""
        now = self.clock()
        ttl, ahead, entries = self.ttl, self._ahead, self._entries
        found: list[ListRead | None] = []
        for author in authors:
            entry = entries.get(author)
            if entry is None or (age := now - entry.fetched) >= ttl:
                found.append(None)
                continue
            entry.used = True
            if age >= ahead:
                self.due = True
            found.append(entry.read)
        return found

    def put(self, author: int, read: ListRead, fetched: float) -> None:
        """Keep a list found by a read sent at `fetched` (unless a later read's list is kept)."""
        if self.ttl <= 0 or not read.complete or fetched < self._cleared:
            return
        kept = self._entries.get(author)
        if kept is not None and kept.fetched > fetched:
            return
        if kept is None and len(self._entries) >= 10_000:
            self._entries.clear()
        self._entries[author] = _Cached(fetched, read, False)

    def to_refresh(self) -> list[int]:
        """The authors whose lists were served since read and are past half their lifetime."""
        now, half = self.clock(), self.ttl / 2
        return [a for a, e in self._entries.items() if e.used and now - e.fetched >= half]

    def clear(self) -> None:
        """Forget every list, as their expiry passing would (a read already sent keeps nothing)."""
        self._entries.clear()
        self._cleared = self.clock()
        self.due = False


class PulledAuthors:
    """Every pulled author's id, reread at most every `ttl_ms` (0: never kept).

    A handful of ids that changes only when an author crosses the celebrity threshold. Kept as
    long as a pulled author's recent list is (HOMEFEED_CELEBRITY_CACHE_MS), so a newly pulled
    author's posts show within the freshness that setting already states. Read again in the
    background past REFRESH_AT of that, so no reader waits for it in a steady state.
    """

    def __init__(self, pool: asyncpg.Pool, ttl_ms: int) -> None:
        self._pool = pool
        self.ttl = ttl_ms / 1000
        self._ids: frozenset[int] = frozenset()
        self._expires = 0.0
        self._expired = float("-inf")  # a load sent before this (see expire) renews nothing
        self._loaded = float("-inf")  # when the load whose set is kept was sent
        # Bumped whenever a reload finds a different set: what was derived from the old one is stale.
        self.generation = 0
        # The set's fingerprint, the same in every process: entries kept in Redis carry it.
        self.digest = pulled_of.digest(())
        self._refresh: asyncio.Task[frozenset[int]] | None = None
        self.ahead = Ahead(self._load_ahead, "pulled authors refresh-ahead")

    async def get(self) -> frozenset[int] | None:
        """The ids, or None when nothing is kept (the caller asks PostgreSQL per read)."""
        if self.ttl <= 0:
            return None
        now = time.monotonic()
        if self._expires >= now:
            if self._expires - now <= self.ttl * (1 - REFRESH_AT):
                self.ahead.kick()
            return self._ids
        if self._refresh is None:  # single-flight: concurrent readers share one query
            self._refresh = asyncio.create_task(self._load())
        refresh = self._refresh
        try:
            return await asyncio.shield(refresh)
        finally:
            if self._refresh is refresh and refresh.done():
                self._refresh = None

    def expire(self) -> None:
        """Reread the ids on the next `get`, as the expiry passing would (the generation stays)."""
        self._expires = 0.0
        self._expired = time.monotonic()
        self._refresh = None  # a load sent before now is not joined by later readers

    async def close(self) -> None:
        """Stop the background refresh (a reader's own load is left to its reader)."""
        await self.ahead.close()

    async def _load_ahead(self) -> None:
        await self._load()

    async def _load(self) -> frozenset[int]:
        started = time.monotonic()
        ids = frozenset(r["id"] for r in await self._pool.fetch(_ALL_PULLED))
        if started < self._loaded:
            # A load sent later (a reader's, beside a refresh running behind) answered first:
            # its set is the newer one, and stays.
            return self._ids
        self._loaded = started
        if ids != self._ids:
            self.generation += 1
            self.digest = pulled_of.digest(ids)
        self._ids = ids
        if started >= self._expired:
            self._expires = max(self._expires, started + self.ttl)
        return ids


@dataclass(slots=True)
class _PulledOf:
    """Which pulled authors a viewer reads, as found under a generation and follows version."""

    generation: int
    version: bytes | None
    expires: float
    known: bool
    pulled: list[int]


@dataclass
class _Found:
    """The visible posts a read has found so far, with what hydration needs of them."""

    posts: list[Post]
    authors: dict[int, User]
    liked: set[int]

    def page(self, ids: list[int], has_next: bool, viewer: int) -> Page:
        return Page(
            ids,
            has_next,
            tuple(self.posts),
            authors=tuple(self.authors.values()),
            liked=frozenset(self.liked),
            followed=frozenset(a for a in self.authors if a != viewer),
            viewer_known=True,
        )


@dataclass(frozen=True, slots=True)
class Window:
    """What the lists hold of a window: ids newest first (unfiltered), and whether they hold
    all of it (else only the ids above the lists' floor, and PostgreSQL knows the rest)."""

    ids: list[int]
    whole: bool


def below(full: ListRead, cursor: int | None, limit: int) -> ListRead:
    """The part of a whole list below a cursor, as if read from Redis with that cursor."""
    # A kept list is hundreds of ids, newest first, and a read wants a few dozen of each pulled
    # author's: bisect and slice, rather than copy the whole list per pulled author per read.
    ids = full.ids
    start = 0 if cursor is None else bisect_right(ids, -cursor, key=neg)
    return ListRead(complete=full.complete, ids=ids[start : start + limit], ttl=full.ttl, limit=limit)


class Feeds:
    """Home feeds (hybrid or pull), author feeds, and per-user timeline upkeep."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: RedisClient,
        posts: Posts,
        settings: Settings,
        *,
        replicas: Replicas | None = None,
    ) -> None:
        self._pool = pool
        # Visibility reads go to a replica fit for the viewer when there is one.
        self.replicas = replicas
        self._redis = redis
        self._posts = posts
        self._keys = Keys(settings.redis_prefix)
        self.size = settings.timeline_size
        self._lists = IdLists(redis, self.size)
        # Every Redis call of a read gives up after this, and the read is answered from PostgreSQL.
        self.read_timeout = settings.redis_read_timeout_ms / 1000
        self.breaker = Breaker(settings.redis_breaker_ms / 1000)
        # The hot read's GET bypasses redis-py (see reads.py); without a URL (a client
        # handed in by a test) it goes through the client.
        # On a cluster, the lean paths (these GETs, fan-out's appends) route by slot themselves,
        # over one map of the cluster per process.
        self.slots = SlotMap(settings.redis_url) if settings.redis_url and is_cluster(redis) else None
        self.reads: RedisReads | ClusterReads | None = None
        if self.slots is not None:
            self.reads = ClusterReads(self.slots, self.read_timeout)
        elif settings.redis_url:
            self.reads = RedisReads(settings.redis_url, self.read_timeout)
            if replicas is not None:
                replicas.use_lean(self.reads)
        # Cold rebuilds running in this process, and how many may: past it, readers without a
        # timeline are answered from PostgreSQL and leave the rebuild to a later read.
        self.rebuilding = 0
        self.rebuild_limit = settings.cold_rebuild_limit
        # Authors' posts this process could not put in their own timeline (Redis failed): per
        # author, (ids newest first, until when kept). Reads merge them in, so the author sees
        # the post on the next read even before fan-out writes it. Empty unless Redis failed.
        self._unsynced: dict[int, tuple[list[int], float]] = {}
        # Its PostgreSQL statement is shared with concurrent reads (see visible.py); the pull
        # query skips the pool's checkout (see Lanes). Both hold connections, within one share.
        share = lane_share(pool)
        visible_lanes = min(VISIBLE_CONNECTIONS, share)
        self.visible_reads = VisibleReads(pool, connections=visible_lanes, before_answers=self._meet_authors)
        self.authors = Authors(Users(pool), replica=replicas.users if replicas is not None else None)
        self.lanes = Lanes(pool, size=min(MAX_LANES, share - visible_lanes))
        self.strategy = settings.feed_strategy
        self.timeline_ttl = max(120, settings.active_days * 86400 - 60)
        self.recent_ttl = 86400
        self._writes = TimelineWrites(
            redis,
            settings.redis_url,
            self._keys,
            self._lists,
            timeline_ttl=self.timeline_ttl,
            recent_ttl=self.recent_ttl,
            slots=self.slots,
            write_timeout=settings.redis_write_timeout_ms / 1000,
        )
        self.recent_cache = RecentCache(settings.celebrity_cache_ms)
        # Reads the kept pulled lists again before they expire, all in one write (see ahead.py).
        self.recent_ahead = Ahead(self._refresh_recent, "pulled lists refresh-ahead")
        # Pulled lists being read right now, so concurrent readers share the read.
        self._recent_pending: dict[int, asyncio.Future[ListRead]] = {}
        self.pulled_authors = PulledAuthors(pool, settings.celebrity_cache_ms)
        # Per viewer, until when this process knows their timeline's expiry needs no refresh
        # (it only counts down, and only rebuilds set it, to the full term): until then a read
        # asks Redis for the timeline alone, one GET instead of a GET + TTL pipeline.
        self._fresh_until: dict[int, float] = {}
        # Per viewer, the pulled authors their feed merges: asking PostgreSQL on every read was
        # a statement per read beside the batched visibility statement (docs/benchmarks.md).
        self._pulled_of: dict[int, _PulledOf] = {}

    async def close(self) -> None:
        """Close the read and write paths' own Redis connections; give PostgreSQL's back to the pool."""
        # First the background refreshes: one still running would reopen the connections below.
        await self.recent_ahead.close()
        await self.pulled_authors.close()
        if self.reads is not None:
            self.reads.close()
        await self._writes.close()
        await self.visible_reads.close()
        await self.authors.close()
        await self.lanes.close()

    # ---- reads -------------------------------------------------------------------------

    async def home(self, viewer: int, first: int, before: int | None) -> Page:
        """One page of the viewer's home feed: posts older than `before`, newest first."""
        check_first(first)
        if self.strategy == "pull":
            return await self.pull_page(viewer, first, before)
        self.authors.start()
        breaker = self.breaker
        if not breaker.allow():
            # Redis failed just now: answer from PostgreSQL without waiting for it to fail again.
            _BREAKER_OPEN.inc()
            return await self.pull_page(viewer, first, before)
        try:
            page = await self._hybrid(viewer, first, before)
        except (RedisError, OSError) as exc:
            # Redis holds only derived data: without it, answer from the source of truth.
            if isinstance(exc, RedisError):
                breaker.failure()
            _REDIS_ERROR.inc()
            log.warning("home feed from PostgreSQL, Redis unavailable: %s", exc)
            return await self.pull_page(viewer, first, before)
        breaker.success()
        return page

    async def pull_page(self, viewer: int, first: int, before: int | None) -> Page:
        """The reference answer, straight from PostgreSQL (a replica when one may answer)."""
        ids = await self._pull(viewer, before, check_first(first) + 1)
        return Page(ids[:first], len(ids) > first)

    async def _pull(self, viewer: int, before: int | None, limit: int) -> list[int]:
        """The pull query's ids: on a replica that misses nothing for this viewer, else the primary."""
        if self.replicas is not None:
            ids = await self.replicas.pull_ids(viewer, before, limit)
            if ids is not None:
                return ids
        return await pull_ids(self.lanes, viewer, before, limit)

    async def author(self, author: int, first: int, before: int | None) -> Page:
        """One page of an author's own posts."""
        ids = await self._posts.by_author(author, before, check_first(first) + 1)
        return Page(ids[:first], len(ids) > first)

    async def _hybrid(self, viewer: int, first: int, before: int | None) -> Page:
        want = first + 1
        timeline = self._keys.timeline(viewer)
        check_expiry = self._fresh_until.get(viewer, 0.0) <= time.monotonic()
        # The timeline is read in the same write as what the viewer's pulled authors need.
        known, pulled, prefetched = await self._viewer(viewer, timeline, with_ttl=check_expiry)
        if known is False:
            return Page([], False, viewer_known=False)
        found = _Found([], {}, set())
        # Everything from `covered` (inclusive) up to `before` is known: `found` holds exactly
        # the visible posts there. Below `covered`, the lists are read again or PostgreSQL answers.
        covered = before
        for round_ in range(MAX_ROUNDS):
            need = want - len(found.posts)
            # A little over the page: filtering rarely drops anything, and what it drops the
            # next round reads (each candidate costs the visibility query a few index probes).
            fetch = min(self.size + 2, need + need // 4 + 4)
            own = None
            if round_ == 0 and prefetched is not None:
                raw, ttl = prefetched
                own = list_below(decode_list(raw), covered, fetch, ttl if check_expiry else self.timeline_ttl)
            else:
                check_expiry = check_expiry and round_ == 0
            own, kept = await self._read_sources(
                timeline, pulled, covered, fetch, with_ttl=check_expiry, own=own
            )
            reads = [own]
            if self._unsynced:
                reads = self._with_unsynced(viewer, reads, covered)
            if round_ == 0:
                if not reads[0].complete:
                    if known is None:
                        known = await self.exists(viewer)
                    if not known:
                        return Page([], False, viewer_known=False)
                    return replace(await self._cold(viewer, first, before), viewer_known=True)
                if check_expiry:
                    await self._keep_alive(viewer, reads[0])
            merged = merge_kept(reads, kept, covered, fetch) if kept else merge(reads, covered)
            if merged.candidates:
                await self._visible_into(found, viewer, merged.candidates, need)
            if len(found.posts) >= want or merged.floor == 0:
                ids = [p.id for p in found.posts[:first]]
                return await self._finish(found, ids, len(found.posts) > first, viewer, known)
            if merged.floor >= (covered if covered is not None else NO_UPPER_BOUND):
                break  # the lists vouch for nothing more below
            covered = merged.floor
        ids = [p.id for p in found.posts]
        _HISTORY.inc()
        ids += await self._pull(viewer, covered, want - len(ids))
        return await self._finish(found, ids[:first], len(ids) > first, viewer, known)

    async def window(self, viewer: int, lowest: int) -> Window | None:
        """The ids the viewer's timeline and pulled lists hold at or above `lowest`, merged as a
        LATEST read merges them (newest first, unfiltered), for the RANKED feed's candidates.

        None when Redis cannot answer now (pull strategy, breaker open, a Redis error, no built
        timeline): the caller reads PostgreSQL, the reference. A cold timeline is left to the
        next LATEST read to rebuild; this read adds no rebuild to PostgreSQL's work.
        """
        if self.strategy == "pull" or not self.breaker.allow():
            return None
        timeline = self._keys.timeline(viewer)
        try:
            # The timeline is read in the same write as what the pulled authors need, as a LATEST
            # read does: one round trip to Redis fewer for a ranked first page.
            known, pulled, prefetched = await self._viewer(viewer, timeline)
            if known is False:
                return Window([], True)
            blob, lists = await self._window_sources(timeline, pulled, prefetched)
        except (RedisError, OSError) as exc:
            if isinstance(exc, RedisError):
                self.breaker.failure()
            _REDIS_ERROR.inc()
            log.warning("ranked candidates from PostgreSQL, Redis unavailable: %s", exc)
            return None
        self.breaker.success()
        if not blob.built:
            return None
        if self._unsynced:
            # Rare (Redis failed on a post): the viewer's own posts it missed, as one more source.
            whole = ListRead(complete=True, ids=blob.ids[::-1].tolist(), ttl=-1, limit=len(blob.ids))
            lists += self._with_unsynced(viewer, [whole], None)[1:]
        # The lists' ids merged as a LATEST read merges them (mixer.window_of), each read only
        # down to the window.
        ids, floor = window_of(blob, lists, self.size + 2, lowest)
        return Window(ids, floor <= lowest)

    async def _window_sources(
        self, timeline: str, pulled: Sequence[int], prefetched: tuple[bytes | None, int] | None
    ) -> tuple[Blob, list[ListRead]]:
        """The viewer's timeline, decoded (unless read already: `prefetched`), and each pulled
        author's whole list, read at the same time."""
        cached = dict(zip(pulled, self.recent_cache.lists(pulled), strict=True))
        missing = [a for a in pulled if cached[a] is None]
        if pulled:
            _CACHE_HIT.inc(len(pulled) - len(missing))
            _CACHE_MISS.inc(len(missing))
            if self.recent_cache.due:
                self.recent_ahead.kick()
        if prefetched is not None:
            raw = prefetched[0]
            if missing:
                cached.update(await self._recent_lists(missing))
        elif missing:
            # Both go out in the same turn of the loop: one write to Redis.
            raw, lists = await asyncio.gather(self._timeline_raw(timeline), self._recent_lists(missing))
            cached.update(lists)
        else:
            raw = await self._timeline_raw(timeline)
        reads: list[ListRead] = []
        for author in pulled:
            whole = cached[author]
            assert whole is not None
            reads.append(whole)
        return decode_list(raw), reads

    async def _timeline_raw(self, timeline: str) -> bytes | None:
        """The timeline as stored."""
        if self.reads is not None:
            return await self.reads.get(timeline)
        raw = await self._redis_call(self._redis.get(timeline))
        assert raw is None or isinstance(raw, bytes)
        return raw

    async def _finish(
        self, found: _Found, ids: list[int], has_next: bool, viewer: int, known: bool | None
    ) -> Page:
        # Any visible row proves the viewer exists (see visible.VISIBLE); an empty read asks.
        if known is None and not found.posts and not await self.exists(viewer):
            return Page([], False, viewer_known=False)
        return found.page(ids, has_next, viewer)

    async def exists(self, user_id: int) -> bool:
        """Whether a user with this id exists."""
        return bool(await self._pool.fetchval(_EXISTS, user_id))

    async def _viewer(
        self, viewer: int, timeline: str | None = None, *, with_ttl: bool = False
    ) -> tuple[bool | None, list[int], tuple[bytes | None, int] | None]:
        """Whether the viewer exists (None: not asked yet), the pulled authors their feed merges,
        and, given its key, the viewer's timeline as stored with its seconds to expiry (-1 unless
        `with_ttl`) when it was read in the same write (else None: the caller reads it)."""
        every = await self.pulled_authors.get()
        if every is not None and not every:
            # No author is pulled: nothing to ask before reading, and the visibility query
            # checks the viewer.
            return None, [], None
        if every is None or len(every) > MAX_PULLED_LISTED:
            row = await self._pool.fetchrow(_VIEWER, viewer)
            assert row is not None
            return bool(row["known"]), list(row["pulled"]), None
        # Read before PostgreSQL: a follow committed after this read bumps it past what is kept.
        version, stored, prefetched = await self._kept_pulled_of(viewer, timeline, with_ttl)
        generation = self.pulled_authors.generation
        digest = self.pulled_authors.digest
        now = time.monotonic()
        kept = self._pulled_of.get(viewer)
        if (
            kept is not None
            and kept.generation == generation
            and kept.version == version
            and kept.expires > now
        ):
            return kept.known, kept.pulled, prefetched
        entry = pulled_of.decode(stored)
        if entry is not None and entry.digest == digest and entry.version == version:
            self._keep_pulled_of(
                viewer, _PulledOf(generation, version, now + PULLED_OF_SECONDS, True, entry.pulled)
            )
            return True, entry.pulled, prefetched
        row = await self._viewer_among(viewer, list(every))
        pulled: list[int] = list(row["pulled"])
        if viewer in every:
            pulled.append(viewer)
        known = bool(row["known"])
        if known:  # an unknown id is answered (empty) each time, never kept
            self._keep_pulled_of(
                viewer, _PulledOf(generation, version, now + PULLED_OF_SECONDS, known, pulled)
            )
            if time.monotonic() - now < PULLED_OF_KEPT_SECONDS / 2:  # the version key outlives it
                await self._store_pulled_of(viewer, pulled_of.Entry(digest, version, pulled))
        return known, pulled, prefetched

    def _keep_pulled_of(self, viewer: int, kept: _PulledOf) -> None:
        if len(self._pulled_of) >= MAX_PULLED_OF:
            self._pulled_of.clear()
        self._pulled_of[viewer] = kept

    async def _kept_pulled_of(
        self, viewer: int, timeline: str | None, with_ttl: bool
    ) -> tuple[bytes | None, bytes | None, tuple[bytes | None, int] | None]:
        """The viewer's follows version and kept entry, and their timeline if named, in one write."""
        keys = [self._keys.follows_version(viewer), self._keys.pulled_of(viewer)]
        if self.reads is None:  # a client handed in (tests): the timeline is read as usual
            values = await self._redis_call(self._redis.mget(keys))
            version, stored = values
            assert (version is None or isinstance(version, bytes)) and (
                stored is None or isinstance(stored, bytes)
            )
            return version, stored, None
        if timeline is None:
            (version, stored), _ = await self.reads.get_all(keys)
            return version, stored, None
        (version, stored, raw), ttl = await self.reads.get_all([*keys, timeline], ttl_of_last=with_ttl)
        return version, stored, (raw, ttl)

    async def _store_pulled_of(self, viewer: int, entry: pulled_of.Entry) -> None:
        """Keep what was found for every process; best effort (a reader without it asks PostgreSQL)."""
        key, value = self._keys.pulled_of(viewer), pulled_of.encode(entry)
        expiry = str(PULLED_OF_KEPT_SECONDS * 1000).encode()
        try:
            if self.reads is not None:
                await self.reads.call(b"SET", key.encode(), value, b"PX", expiry)
            else:
                await self._redis_call(self._redis.set(key, value, px=PULLED_OF_KEPT_SECONDS * 1000))
        except (RedisError, OSError) as exc:
            log.debug("could not keep pulled authors of %d: %s", viewer, exc)

    async def _viewer_among(self, viewer: int, every: list[int]) -> asyncpg.Record:
        """`_VIEWER_AMONG`, on a replica that has the viewer's own last write and the last hiding
        write: the follows it reads change only by the viewer's follows and unfollows and by
        blocks (hiding writes), and `every` comes from the primary. (`_VIEWER` stays there: it
        reads which followees are pulled, which a mode change, nobody's mark, moves.)"""
        if self.replicas is not None:

            async def among(pool: asyncpg.Pool) -> asyncpg.Record | None:
                return await pool.fetchrow(_VIEWER_AMONG, viewer, every)

            row = await self.replicas.run("viewer", viewer, (), among)
            if row is not None:
                return row
        found = await self._pool.fetchrow(_VIEWER_AMONG, viewer, every)
        assert found is not None
        return found

    async def _follows_version(self, viewer: int) -> bytes | None:
        key = self._keys.follows_version(viewer)
        if self.reads is not None:
            return await self.reads.get(key)
        value = await self._redis_call(self._redis.get(key))
        assert value is None or isinstance(value, bytes)
        return value

    async def follows_changed(self, follower: int) -> None:
        """Tell every process's readers that this user's follows changed (their kept lists are stale)."""
        # A fresh random version, not a counter: a flush (or a restart) loses the key, and a
        # counter would then count again from 1, back to a version that entries kept in a
        # process were found under, and a follow made after the flush would go unseen.
        version = secrets.token_hex(8).encode()
        key = self._keys.follows_version(follower)
        await self._redis_call(self._redis.set(key, version, ex=FOLLOWS_VERSION_SECONDS))

    async def _read_sources(
        self,
        timeline: str,
        pulled: Sequence[int],
        cursor: int | None,
        fetch: int,
        *,
        with_ttl: bool,
        own: ListRead | None = None,
    ) -> tuple[ListRead, list[ListRead]]:
        """The timeline below the cursor (unless read already: `own`) and each pulled author's
        whole kept list (newest first; the caller takes what it needs below the cursor), read
        at the same time.

        Without `with_ttl` the timeline's read may report a made-up full expiry (never acted on).
        """
        cache = self.recent_cache
        kept = cache.lists(pulled) if pulled else []
        missing = [a for a, read in zip(pulled, kept, strict=True) if read is None]
        if pulled:
            # Only what is not 0: each increment takes the metric's lock.
            if len(missing) < len(pulled):
                _CACHE_HIT.inc(len(pulled) - len(missing))
            if missing:
                _CACHE_MISS.inc(len(missing))
            if cache.due:
                self.recent_ahead.kick()
        lists: dict[int, ListRead] = {}
        if missing and own is not None:
            lists = await self._recent_lists(missing)
        elif missing:
            # Both go out in the same turn of the loop: one write to Redis, as one pipeline.
            own, lists = await asyncio.gather(
                self._read_timeline(timeline, cursor, fetch, with_ttl=with_ttl),
                self._recent_lists(missing),
            )
        elif own is None:
            own = await self._read_timeline(timeline, cursor, fetch, with_ttl=with_ttl)
        assert own is not None
        if not missing:  # the usual read: every list was kept
            return own, cast(list[ListRead], kept)
        return own, [
            whole if whole is not None else lists[author] for author, whole in zip(pulled, kept, strict=True)
        ]

    async def _refresh_recent(self) -> None:
        """Read again, in one write, every kept pulled list served since read and half-way through
        its lifetime (one was past REFRESH_AT): readers go on with the kept copies meanwhile."""
        cache = self.recent_cache
        authors = cache.to_refresh()
        if authors:
            fetched = cache.clock()
            reads = await self._redis_call(self._read_recent(authors))
            for author, read in zip(authors, reads, strict=True):
                cache.put(author, read, fetched)  # an incomplete list is left to a reader's fallback
        cache.due = False

    async def _read_timeline(
        self, timeline: str, cursor: int | None, fetch: int, *, with_ttl: bool
    ) -> ListRead:
        if self.reads is None:
            return (await self._redis_call(self._lists.read([ListQuery(timeline, cursor, fetch)])))[0]
        # The usual read: the timeline alone (and its expiry when due), on the lean connection.
        if with_ttl:
            raw, ttl = await self.reads.get_with_ttl(timeline)
        else:
            raw, ttl = await self.reads.get(timeline), self.timeline_ttl
        return list_below(decode_list(raw), cursor, fetch, ttl)

    async def _recent_lists(self, authors: Sequence[int]) -> dict[int, ListRead]:
        """Pulled authors' whole lists, read once per process however many readers want them at once.

        When a kept list expires, every concurrent reader of that author misses it together: each
        used to read and decode it again (with 30 pulled authors, a good share of all reads).
        """
        found: dict[int, ListRead] = {}
        waits: dict[int, asyncio.Future[ListRead]] = {}
        fetch: list[int] = []
        for author in authors:
            kept = self.recent_cache.get(author)
            if kept is not None:
                found[author] = kept
            elif (pending := self._recent_pending.get(author)) is not None:
                waits[author] = pending
            else:
                fetch.append(author)
        if fetch:
            loop = asyncio.get_running_loop()
            mine = {a: loop.create_future() for a in fetch}
            self._recent_pending.update(mine)
            try:
                cache = self.recent_cache
                fetched = cache.clock()
                reads = await self._read_recent(fetch)
                for author, read in zip(fetch, reads, strict=True):
                    if not read.complete:
                        read = await self._recent_fallback(author)
                    cache.put(author, read, fetched)
                    found[author] = read
                    mine[author].set_result(read)
            except BaseException as exc:
                error = exc if isinstance(exc, Exception) else ConnectionError("the read was stopped")
                for future in mine.values():
                    if not future.done():
                        future.set_exception(error)
                        future.exception()  # retrieved: the waiters (if any) get it raised
                raise
            finally:
                for author, future in mine.items():
                    if self._recent_pending.get(author) is future:
                        del self._recent_pending[author]
        for author, future in waits.items():
            found[author] = await asyncio.shield(future)
        return found

    async def _read_recent(self, authors: Sequence[int]) -> list[ListRead]:
        """Whole recent lists, on the lean connection when there is one (GETs in one write)."""
        limit = self.size + 2
        if self.reads is None:
            queries = [ListQuery(self._keys.recent(a), None, limit) for a in authors]
            return await self._redis_call(self._lists.read(queries))
        keys = [self._keys.recent(a) for a in authors]
        if isinstance(self.reads, RedisReads):
            raws, _ = await self.reads.get_all(keys)  # one write, one reply to parse
        else:  # a cluster: each key to its own slot's master, all sent in this turn of the loop
            reads = self.reads
            raws = await asyncio.gather(*(reads.get(k) for k in keys))
        return [list_below(decode_list(raw), None, limit, self.recent_ttl) for raw in raws]

    async def visible(self, viewer: int, ids: Sequence[int]) -> list[Post]:
        """The posts among ids that the viewer may see in their feed, newest first, hydrated."""
        found = _Found([], {}, set())
        await self._visible_into(found, viewer, ids, len(ids))
        return found.posts

    async def visible_page(self, viewer: int, ids: Sequence[int]) -> Page:
        """Like `visible`, with the posts' authors and the viewer's likes, as a page (newest first)."""
        found = _Found([], {}, set())
        if ids:
            await self._visible_into(found, viewer, ids, len(ids))
        return found.page([p.id for p in found.posts], False, viewer)

    async def shown_page(self, viewer: int, posts: Sequence[Post], liked: Iterable[int]) -> Page:
        """Posts the caller read as visible to the viewer (a RANKED first page's features
        statement filters as the visibility read does), as a page with their authors, as
        `visible_page` gives it: the page then needs no visibility read of its own."""
        found = _Found(list(posts), {}, set(liked))
        authors, known = found.authors, self.authors.get
        missing: dict[int, None] = {}
        for post in posts:
            author_id = post.author_id
            if author_id not in authors:
                author = known(author_id)
                if author is None:
                    missing[author_id] = None
                else:
                    authors[author_id] = author
        if missing:
            authors.update(await self.authors.load(list(missing)))
        return found.page([p.id for p in found.posts], False, viewer)

    async def _visible_into(self, found: _Found, viewer: int, ids: Sequence[int], limit: int) -> None:
        # The hottest loop of a read. Rows unpack by position (`ord`, then visible.COLUMNS), and
        # records are built by tuple.__new__: a named tuple's own __new__ is a Python function,
        # a call per row that made this loop markedly slower.
        posts, authors, liked = found.posts, found.authors, found.liked
        known = self.authors.get
        missing: list[int] = []
        rows = None
        if self.replicas is not None:
            rows = await self.replicas.visible_rows(viewer, ids, limit)
        if rows is None:
            rows = await self.visible_reads.rows(viewer, ids, limit)
        for _, post_id, author_id, text, like_count, likes in rows:
            posts.append(_new(Post, (post_id, author_id, text, like_count)))
            if author_id not in authors:
                author = known(author_id)
                if author is None:
                    missing.append(author_id)
                else:
                    authors[author_id] = author
            if likes:
                liked.add(post_id)
        if missing:
            authors.update(await self.authors.load(missing))

    async def _meet_authors(self, rows: Sequence[asyncpg.Record]) -> None:
        """Read the authors a batch of visibility rows names that this process has not met, once
        for the batch (its reads then resume together). Best effort: a read still reads its own."""
        known = self.authors.get
        missing = {a for row in rows if (a := row[2]) is not None and known(a) is None}
        if missing:
            try:
                await self.authors.load(list(missing))
            except (asyncpg.PostgresError, OSError, LookupError) as exc:
                log.debug("authors of a visibility batch left to its reads: %s", exc)

    async def _keep_alive(self, viewer: int, timeline: ListRead) -> None:
        # The timeline expires a little before PostgreSQL would call the user inactive, so a
        # timeline that fan-out stopped feeding is never served.
        due = self.timeline_ttl - TOUCH_EVERY_SECONDS
        remaining = timeline.ttl
        if remaining < due:
            await self.touch(viewer)
            await self._redis_call(self._writes.keep_alive(viewer))
            remaining = self.timeline_ttl
        if len(self._fresh_until) >= 200_000:
            self._fresh_until.clear()
        self._fresh_until[viewer] = time.monotonic() + (remaining - due)

    async def touch(self, user_id: int) -> None:
        """Record that a user is active, so fan-out includes them."""
        await self._pool.execute("UPDATE users SET last_seen_at = now() WHERE id = $1", user_id)

    # ---- cold path -----------------------------------------------------------------------

    async def _cold(self, viewer: int, first: int, before: int | None) -> Page:
        """No timeline: rebuild it once (single-flight) and answer this read from PostgreSQL.

        At most `rebuild_limit` rebuilds run at once in a process: after a flush every reader
        is cold, and PostgreSQL would take all their rebuilds at once on top of their reads.
        Readers past the limit are answered without rebuilding; a later read rebuilds.
        """
        if self.rebuilding >= self.rebuild_limit:
            _REBUILD_LIMIT.inc()
            return await self.pull_page(viewer, first, before)
        _COLD.inc()
        self.rebuilding += 1
        try:
            await self.touch(viewer)
            lock = self._keys.rebuild_lock(viewer)
            timeline = self._keys.timeline(viewer)
            if await self._single_flight(lock, timeline, lambda: self.rebuild_timeline(viewer)):
                COLD_REBUILDS.inc()
        finally:
            self.rebuilding -= 1
        return await self.pull_page(viewer, first, before)

    async def _single_flight(self, lock: str, key: str, rebuild: Callable[[], Awaitable[None]]) -> bool:
        """Rebuild `key` if this read wins its Redis lock and the list is still not built; False if
        another reader holds the lock (and rebuilds) or has rebuilt it already."""
        won, raw = await self._redis_call(self._lock_and_read(lock, key))
        if not won:
            return False
        try:
            # This reader found the list missing before taking the lock: another may have won
            # the lock, rebuilt the list and released it since, and a second rebuild is work for
            # PostgreSQL that changes nothing.
            if decode_list(raw).built:
                return False
            await rebuild()
        finally:
            await self._redis_call(self._redis.delete(lock))
        return True

    async def _lock_and_read(self, lock: str, key: str) -> tuple[bool, bytes | None]:
        """Take the rebuild lock and read the list, in one round trip: whether the lock was won.

        One node on a cluster: the lock and the list carry the same user's hash tag (keys.py).
        No MULTI: the GET runs after the SET on this connection, so it sees the list as of the
        lock being taken, as a second round trip would; whatever other clients do between the
        two they could do between two round trips, and the check was always only that a
        rebuild finished before this reader held the lock. Read whole (a cold list is missing,
        or unbuilt and bounded): a header's meaning depends on the list's length, and STRLEN
        and GETRANGE, not in one transaction, could see two different lists.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(lock, b"1", nx=True, px=REBUILD_LOCK_MS)
            pipe.get(key)
            won, raw = await pipe.execute()
        return bool(won), raw

    async def _redis_call(self, call: Awaitable[T]) -> T:
        # redis-py's own timeout is the client's (seconds): a read waits no longer than the lean GET.
        return await within(self.read_timeout, call)

    async def rebuild_timeline(self, user_id: int) -> None:
        """Rebuild a user's timeline from PostgreSQL, merging with anything written meanwhile.

        On a replica only if it has replayed the primary's position as of now (see
        Replicas.timeline_ids): the timeline is stored, so it must miss nothing the primary has.
        """
        ids = None
        if self.replicas is not None and self.replicas.replicas:
            since = await self.replicas.primary_lsn()
            ids = await self.replicas.timeline_ids(user_id, since, self.size + 1)
        if ids is None:
            ids = await timeline_ids(self._pool, user_id, self.size + 1)
        await self._redis_call(
            self._writes.rebuild(user_id, ids[: self.size], whole_history=len(ids) <= self.size)
        )

    async def rebuild_recent(self, author: int) -> None:
        """Build a pulled author's recent list from PostgreSQL now (an author just made pulled)."""
        # Upkeep, not a read: the client's own timeout applies, not the read path's.
        ids = await self._posts.by_author(author, None, self.size + 1)
        await self._writes.rebuild_recent(author, ids[: self.size], whole_history=len(ids) <= self.size)

    async def forget_recent(self, authors: Sequence[int]) -> None:
        """Drop these authors' recent lists: once pushed again nothing keeps them current."""
        if authors:
            await self._redis.unlink(*(self._keys.recent(a) for a in authors))

    async def _recent_fallback(self, author: int) -> ListRead:
        """A pulled author's list is missing: rebuild it once (within the limit); read PostgreSQL now."""
        ids = await self._posts.by_author(author, None, self.size + 1)
        whole = len(ids) <= self.size
        if self.rebuilding < self.rebuild_limit:
            self.rebuilding += 1
            try:
                await self._single_flight(
                    self._keys.recent_lock(author),
                    self._keys.recent(author),
                    lambda: self._redis_call(
                        self._writes.rebuild_recent(author, ids[: self.size], whole_history=whole)
                    ),
                )
            finally:
                self.rebuilding -= 1
        listed = ids[: self.size] + ([BOTTOM] if whole else [])
        return ListRead(complete=True, ids=listed, ttl=self.recent_ttl, limit=self.size + 2)

    # ---- read your own writes ---------------------------------------------------------------

    async def own_post(self, author: int, post_id: int) -> bool:
        """Put a just-committed post in its author's own timeline, so their very next read shows it.

        Best effort, after the commit: the post's fan-out job appends it again (appends are
        idempotent). If Redis fails, or the breaker keeps reads off it, this process remembers
        the post and merges it into the author's reads until their timeline holds it; any read
        answered from PostgreSQL has it anyway. True when the post reached the timeline.
        """
        if self.strategy == "pull":
            return True  # every read comes from PostgreSQL
        if self.breaker.allow():
            try:
                await self._append_own(author, post_id)
            except RedisError as exc:
                self.breaker.failure()
                log.warning("own post %d kept in process, Redis unavailable: %s", post_id, exc)
            else:
                self.breaker.success()
                return True
        self._remember_unsynced(author, post_id)
        return False

    async def _append_own(self, author: int, post_id: int) -> None:
        key, entry = self._keys.timeline(author), encode_id(post_id)
        # One APPEND on the read path's own connection, not the bulk writer: that one is the
        # fan-out worker's, and a post must not wait behind a big author's batch.
        if self.reads is not None:
            length = await self.reads.call(b"APPEND", key.encode(), entry)
        else:
            length = await self._redis_call(self._redis.append(key, entry))
        assert isinstance(length, int)
        if length == len(entry):
            # This APPEND created the key (no header: untrusted, so the next read rebuilds it).
            await self._redis_call(self._redis.expire(key, self.timeline_ttl))
        elif length > self._lists.max_bytes:
            await self._redis_call(self._lists.trim(key))

    def _remember_unsynced(self, author: int, post_id: int) -> None:
        now = time.monotonic()
        if len(self._unsynced) >= MAX_UNSYNCED_AUTHORS:
            self._unsynced = {a: e for a, e in self._unsynced.items() if e[1] > now}
            if len(self._unsynced) >= MAX_UNSYNCED_AUTHORS:
                self._unsynced.clear()  # bounded memory; fan-out still brings every post
        ids = self._unsynced.get(author, ([], 0.0))[0]
        kept = sorted({post_id, *ids}, reverse=True)[:UNSYNCED_PER_AUTHOR]
        self._unsynced[author] = (kept, now + UNSYNCED_SECONDS)

    def _with_unsynced(self, viewer: int, reads: list[ListRead], cursor: int | None) -> list[ListRead]:
        """The reads plus, as one more source, the viewer's own posts that missed their timeline."""
        entry = self._unsynced.get(viewer)
        if entry is None:
            return reads
        ids, until = entry
        timeline = reads[0]
        if timeline.complete:
            # Fan-out (or a rebuild) has written these since: the timeline vouches for them now.
            ids = [i for i in ids if i not in timeline.ids]
        if not ids or until < time.monotonic():
            del self._unsynced[viewer]
            return reads
        if len(ids) < len(entry[0]):
            self._unsynced[viewer] = (ids, until)
        own = [i for i in ids if cursor is None or i < cursor]
        if not own:
            return reads
        # Ends with BOTTOM: this source holds all there is of it, so it lowers no floor.
        return [*reads, ListRead(complete=True, ids=[*own, BOTTOM], ttl=-1, limit=len(own) + 1)]

    # ---- upkeep of one user's timeline ------------------------------------------------------

    async def sync_pair(self, follower: int, author: int) -> None:
        """Make follower's timeline agree with whether they follow author (backfill or remove)."""
        # First: the API's immediate upkeep and the worker's job both come here, so a bump lost
        # to a Redis failure is retried with the job.
        await self.follows_changed(follower)
        if await self._follows(follower, author):
            await self._backfill(follower, author)
            return
        ids = await self._posts.recent_ids(author, self.size + 1, include_deleted=True)
        await self._writes.remove(follower, ids)
        # A follow may have landed (and been backfilled) while we removed: put it back.
        if await self._follows(follower, author):
            await self._backfill(follower, author)

    async def _backfill(self, follower: int, author: int) -> None:
        ids = await self._posts.recent_ids(author, self.size + 1)
        await self._writes.add([follower], ids[: self.size], more_before=len(ids) > self.size)

    async def _follows(self, follower: int, author: int) -> bool:
        found: bool = await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2)",
            follower,
            author,
        )
        return found

    async def after_follow_change(self, follower: int, author: int) -> None:
        """Best-effort immediate upkeep after a follow or unfollow; the outbox job makes it durable."""
        try:
            await self.sync_pair(follower, author)
        except (RedisError, OSError) as exc:
            log.warning("timeline upkeep deferred to the worker: %s", exc)

    # ---- fan-out and bulk writes --------------------------------------------------------------

    async def push(self, user_ids: Sequence[int], post_id: int) -> None:
        """Append a post to these users' timelines: the bulk fan-out write, trimming what outgrows its bound.

        Calls are serialised on one dedicated connection; overlap them (one in flight while
        the next batch of users is fetched) to keep both servers busy.
        """
        await self._writes.push(user_ids, post_id)

    async def push_recent(self, author: int, post_id: int) -> None:
        """Append a post to a pulled author's recent list, which readers merge into their feeds."""
        await self._writes.push_recent(author, post_id)

    async def unlist_recent(self, author: int, post_id: int) -> None:
        """Take a deleted post out of its author's recent list.

        Readers drop deleted posts anyway, and a deleted id leaves each timeline at its next
        trim, so only the one list readers read whole (a pulled author's) is rewritten.
        """
        await self._writes.remove_recent(author, [post_id])

    async def backfill(self, user_ids: Sequence[int], post_ids: Sequence[int], *, more_before: bool) -> None:
        """Merge posts into these users' timelines (an author leaving PULL), one rewrite each.

        A merge, not blind appends: appended ids would land below a trimmed timeline's oldest
        entry, or in a timeline marked as holding all history while older posts are left out.
        `more_before` says the author has older posts than these (see IdLists.add).
        """
        await self._writes.add(user_ids, post_ids, more_before=more_before)

    async def replicated(self) -> None:
        """On a cluster, wait until every master's replica has every write made so far (no-op otherwise)."""
        await self._writes.replicated()

    async def write_built(self, timelines: Sequence[BuiltTimeline]) -> None:
        """Store whole timelines computed elsewhere (a bulk load), replacing what is there."""
        await self._writes.write_built(timelines)

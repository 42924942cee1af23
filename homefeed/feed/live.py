"""Live feed updates: notices published to Redis, and one hub per process that fans them out in memory.

Channels (one subscription per process: classic pub/sub on a single server, sharded pub/sub
with a connection per owning master on a cluster, see pubsub.py):
- `{prefix}:live:author:{a}`: a post of author `a` reached followers in a follower-id
  range (after fan-out, or at once for pulled authors), or was deleted;
- `{prefix}:live:user:{u}`: user `u`'s relationships changed (follow, block, mute, ...).

The hub subscribes to the channels its connected viewers need (their followees,
themselves), keeps each viewer's relationships in memory to decide who may see
what, and gives each subscriber a bounded queue: a subscriber that falls behind
has its backlog dropped for a single RESYNC, so memory stays bounded.

Relationship notices are best effort like every notice, so the hub does not trust them
alone: every REFRESH_SECONDS, and after it reconnects to Redis, it re-reads the
relationships of all its viewers (one statement per batch of viewers), so a lost notice
is healed within that interval. A change that hides authors sends REMOVED for their
recent posts; a change that reveals authors (follow, re-follow, unmute) sends RESYNC,
since the client must refetch to see the posts they bring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import asyncpg
import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from homefeed.feed.idset import EMPTY, IdSet
from homefeed.feed.mailbox import Mailbox
from homefeed.feed.metrics import LIVE_DELIVERED, LIVE_OVERFLOWS, LIVE_RESYNCS, LIVE_SUBSCRIBERS
from homefeed.feed.pubsub import Subscription, open_subscription, publish
from homefeed.feed.records import Post
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.store.posts import Posts

log = logging.getLogger(__name__)

QUEUE_SIZE = 64
# ADDED post ids a subscriber remembers, to send each once: a post can be announced twice (to its
# author when created and again after fan-out, or by a fan-out job redone after a crash).
RECENT_ADDED = 32
# How many of an author's newest posts a viewer may have on screen when they unfollow, block or mute.
ON_SCREEN = 50
MAX_ID = 2**63 - 1
# How often a hub re-reads its viewers' relationships: the longest a lost "rel" notice goes unnoticed.
REFRESH_SECONDS = 30.0
# Viewers whose relationships one refresh statement reads.
REFRESH_BATCH = 500


class Kind(Enum):
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    RESYNC = "RESYNC"


@dataclass(frozen=True, eq=False)
class LiveEvent:
    """One update, shared by every subscriber of this process that receives it."""

    kind: Kind
    post_id: int = 0
    author_id: int = 0
    post: Post | None = None  # hydrated once per event, for ADDED


RESYNC = LiveEvent(Kind.RESYNC)

# One child per kind, made up front: every kind is exported from the first scrape (a dashboard
# sees zeros, not a missing series), and delivering an event skips the label look-up.
_DELIVERED = {kind: LIVE_DELIVERED.labels(kind.value) for kind in Kind}


@dataclass(frozen=True, slots=True)
class Notice:
    """What travels on a channel."""

    kind: str  # "add" | "del" | "rel"
    post_id: int = 0
    lo: int = -1  # followers in (lo, hi] were reached
    hi: int = MAX_ID
    to_self: bool = False  # the author's own feed was reached
    other: int = 0  # for "rel": the other user
    verb: str = ""  # for "rel": follow, unfollow, block, unblock, mute, unmute

    def encode(self) -> bytes:
        return orjson.dumps([self.kind, self.post_id, self.lo, self.hi, self.to_self, self.other, self.verb])

    @classmethod
    def decode(cls, data: bytes) -> Notice:
        kind, post_id, lo, hi, to_self, other, verb = orjson.loads(data)
        return cls(kind, post_id, lo, hi, to_self, other, verb)


class Channels:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def author(self, author_id: int) -> str:
        return f"{self.prefix}:live:author:{author_id}"

    def user(self, user_id: int) -> str:
        return f"{self.prefix}:live:user:{user_id}"


class Notices:
    """Publishes notices. Best effort: a lost notice only costs a live update, never feed content."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self.channels = Channels(prefix)

    async def _publish(self, channel: str, notice: Notice) -> None:
        try:
            await publish(self._redis, channel, notice.encode())
        except (RedisError, OSError) as exc:
            log.warning("live notice dropped, Redis unavailable: %s", exc)

    async def post_reached(self, author: int, post_id: int, lo: int, hi: int, to_self: bool) -> None:
        """A post is now in the feeds of the author's followers in (lo, hi] (and the author's own)."""
        await self._publish(self.channels.author(author), Notice("add", post_id, lo, hi, to_self))

    async def post_deleted(self, author: int, post_id: int) -> None:
        """A post left every feed."""
        await self._publish(self.channels.author(author), Notice("del", post_id, to_self=True))

    async def relation_changed(self, user: int, other: int, verb: str) -> None:
        """User's relationship to other changed."""
        await self._publish(self.channels.user(user), Notice("rel", other=other, verb=verb))


@dataclass(frozen=True, slots=True)
class Relations:
    """What a viewer's live stream depends on: whom they follow, and whom they may not see."""

    followees: IdSet
    hidden: frozenset[int]  # muted or blocked either way


class Broadcast(Protocol):
    """Delivers one event to many subscribers at once (the API renders it once for all of them).

    Each subscriber gets the event either written directly or, when it cannot be written now,
    through `Subscriber.enqueue` (the per-subscriber path). `deliver` raises only before it has
    delivered anything; it returns how many it wrote directly."""

    async def deliver(self, event: LiveEvent, subscribers: list[Subscriber]) -> int: ...


@dataclass(eq=False, slots=True)
class Subscriber:
    viewer: int
    # Set by the API when this subscriber's events can be rendered once with others': the hub
    # then hands events to it for all such subscribers instead of to each one's queue. What the
    # broadcast needs of this subscriber (its connection, its frame) it keeps in `sink`.
    broadcast: Broadcast | None = None
    sink: object = None
    queue: Mailbox[LiveEvent] = field(default_factory=lambda: Mailbox(QUEUE_SIZE))
    # The hub's Relations sets themselves, replaced whole when relationships change: a copy per
    # subscriber would double the largest part of an idle subscription's memory (bench live-heap).
    followees: IdSet = EMPTY
    hidden: frozenset[int] = frozenset()  # muted or blocked either way
    overflowed: bool = False
    resync_queued: bool = False
    recent: list[int] | None = None  # the last RECENT_ADDED, oldest first (a deque costs 600 B)
    # Bumped whenever relationships are applied, so a read that another one overtook is not applied.
    generation: int = 0
    # Set when it leaves the hub: a delivery already under way skips it (its client may have
    # said `complete`, after which nothing more may be sent for the operation).
    gone: bool = False
    # For a subscriber no task reads (the API's parked subscriptions): called when its queue
    # gains something, so that something starts reading it.
    wake: Callable[[], None] | None = None

    def sees(self, author: int) -> bool:
        """Whether posts by author belong in this viewer's feed."""
        return author not in self.hidden and (author == self.viewer or author in self.followees)

    def visible(self) -> set[int]:
        """The authors whose posts belong in this viewer's feed (as far as the hub knows)."""
        return {a for a in self.authors() if self.sees(a)}

    def authors(self) -> set[int]:
        """The authors whose channels this subscriber listens to: its followees and itself."""
        return {*self.followees, self.viewer}

    def offer(self, event: LiveEvent) -> None:
        """Queue an event; a full queue is dropped for one RESYNC (the client refetches)."""
        if self.admit(event):
            self.enqueue(event)

    def admit(self, event: LiveEvent) -> bool:
        """Whether event is news to this subscriber (then it is remembered as sent)."""
        if self.overflowed or (event is RESYNC and self.resync_queued):
            return False  # the refetch a queued RESYNC asks for covers this too
        if event.kind is Kind.ADDED:
            recent = self.recent
            if recent is None:
                self.recent = [event.post_id]
            elif event.post_id in recent:
                return False
            else:
                recent.append(event.post_id)
                if len(recent) > RECENT_ADDED:
                    del recent[0]
        return True

    def enqueue(self, event: LiveEvent) -> None:
        """Queue an admitted event for the per-subscriber path."""
        if self.gone:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            self.overflowed = True
            LIVE_OVERFLOWS.inc()
            if not self.resync_queued:  # a RESYNC dropped with the backlog was counted already
                LIVE_RESYNCS.inc()
            self.resync_queued = True
            if self.wake is not None:
                self.wake()
            return
        if event is RESYNC:
            self.resync_queued = True
            LIVE_RESYNCS.inc()
        if self.wake is not None:
            self.wake()

    async def next(self) -> LiveEvent:
        """The next event, waiting for one."""
        event = await self.queue.get()
        if event is RESYNC:
            self.overflowed = False
            self.resync_queued = False
        _DELIVERED[event.kind].inc()
        return event


class _Index:
    """Subscribers by user id (an author they follow, or the viewer). A key with one member keeps
    it as itself and a key with more keeps a list: a set per followed author was the largest
    part of an idle subscription's memory (bench live-heap), and a list costs a pointer per
    member where a set costs 27 to 53 bytes (its hash table), about 3 KB per subscription at
    10,000 subscribers, where half the memberships are under popular authors (bench live).

    Dropping from a short list removes at once. A long list (a popular author) would make
    that a scan per drop, so a drop there is only noted in the key's `stale` set, which
    `get` leaves out; the list is rebuilt without them once they are half of it, so a drop
    costs O(1) amortized and the list stays within twice its live members."""

    __slots__ = ("_list_max", "_members", "_stale")

    # Above this many members a key's drops are noted, not removed at once.
    LIST_MAX = 32

    def __init__(self, list_max: int = LIST_MAX) -> None:
        self._list_max = list_max
        self._members: dict[int, Subscriber | list[Subscriber]] = {}
        self._stale: dict[int, set[Subscriber]] = {}  # only keys with drops not yet removed

    def __contains__(self, key: int) -> bool:
        return key in self._members

    def __iter__(self) -> Iterator[int]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def get(self, key: int) -> Collection[Subscriber]:
        """The members of key (none if absent)."""
        found = self._members.get(key)
        if found is None:
            return ()
        if isinstance(found, Subscriber):
            return (found,)
        stale = self._stale.get(key)
        return found if stale is None else [s for s in found if s not in stale]

    def add(self, key: int, sub: Subscriber, *, new: bool = False) -> bool:
        """Add sub under key; whether key is new. `new`: sub is under no key yet (a subscriber
        registering), so a long list need not be searched for it."""
        found = self._members.get(key)
        if found is None:
            self._members[key] = sub
            return True
        if isinstance(found, Subscriber):
            if found is not sub:
                self._members[key] = [found, sub]
            return False
        stale = self._stale.get(key)
        if stale is not None and sub in stale:
            stale.discard(sub)  # a drop noted, not carried out: it may still be in the list
            if not stale:
                del self._stale[key]
        # A relationship change (rare) searches the list; a registering subscriber is in none.
        if new or sub not in found:
            found.append(sub)
        return False

    def drop(self, key: int, sub: Subscriber) -> bool:
        """Remove sub from key; whether key is now gone."""
        found = self._members.get(key)
        if found is None:
            return False
        if isinstance(found, Subscriber):
            if found is not sub:
                return False
            del self._members[key]
            return True
        stale = self._stale.get(key)
        if stale is not None and sub in stale:
            return False  # dropped already
        if len(found) <= self._list_max:
            if sub in found:
                found.remove(sub)
            if len(found) == 1:
                self._members[key] = found[0]
            return False
        # Whether sub is a member is not looked up (a scan): a drop of a non-member is noted
        # like any other, which `get`, `add` and the rebuild below all tolerate.
        if stale is None:
            stale = self._stale[key] = set()
        stale.add(sub)
        if 2 * len(stale) >= len(found):
            kept = [s for s in found if s not in stale]
            del self._stale[key]
            if not kept:
                del self._members[key]
                return True
            self._members[key] = kept[0] if len(kept) == 1 else kept
        return False


class HubClosed(Exception):
    """A subscriber came after the hub closed: refused, not left waiting for events that never come."""


class LiveHub:
    """This process's single Redis subscription, shared by all its live subscribers."""

    def __init__(
        self,
        redis: RedisClient,
        pool: asyncpg.Pool,
        posts: Posts,
        prefix: str,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._posts = posts
        self.channels = Channels(prefix)
        self.refresh_seconds = refresh_seconds
        self._pubsub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._subscribers: set[Subscriber] = set()
        self._by_author = _Index()
        self._by_user = _Index()
        # The hub listens on the channels of its index's keys: once synced, exactly those. Index
        # keys that gained their first or lost their last subscriber since the last sync are
        # dirty: syncing looks at these only, so a subscribe costs its own channels, not every
        # channel. No set of the channel names listened on is kept beside the index: at 10,000
        # subscribers that is ~100,000 strings, about 2 KB per subscription (bench live).
        self._dirty: set[tuple[bool, int]] = set()  # (is author channel, user id)
        # Whether the subscription holds the index's channels: not between a lost connection
        # and a successful resubscription.
        self._listening = False
        # Set by close, never cleared: a closed hub opens no subscription and starts no task.
        self._closed = False
        self._lock = asyncio.Lock()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def channel_count(self) -> int:
        """The channels listened on (once the last change is synced)."""
        return len(self._by_author) + len(self._by_user) if self._listening else 0

    async def relations(self, viewers: Sequence[int]) -> dict[int, Relations]:
        """The current relationships of many viewers, read in one statement."""
        rows = await self._pool.fetch(
            """SELECT v.id,
                 ARRAY(SELECT followee_id FROM follows WHERE follower_id = v.id
                       ORDER BY followee_id) AS followees,
                 ARRAY(SELECT muted_id FROM mutes WHERE muter_id = v.id
                       UNION SELECT blocked_id FROM blocks WHERE blocker_id = v.id
                       UNION SELECT blocker_id FROM blocks WHERE blocked_id = v.id) AS hidden
               FROM unnest($1::bigint[]) AS v(id)""",
            list(viewers),
        )
        # Followees come ascending and distinct (the primary key's order): no set and sort here.
        return {r["id"]: Relations(IdSet.of_sorted(r["followees"]), frozenset(r["hidden"])) for r in rows}

    @contextlib.asynccontextmanager
    async def subscribe(
        self, viewer: int, broadcast: Broadcast | None = None, sink: object = None
    ) -> AsyncIterator[Subscriber]:
        """A live subscriber for viewer, registered for as long as the context lasts. With a
        broadcast, events go to it (with this subscriber's sink) rather than to the queue."""
        sub = await self.attach(viewer, broadcast, sink)
        try:
            yield sub
        finally:
            await self.detach(sub)

    async def attach(
        self,
        viewer: int,
        broadcast: Broadcast | None = None,
        sink: object = None,
        wake: Callable[[], None] | None = None,
    ) -> Subscriber:
        """Register a live subscriber for viewer until `detach`. With `wake`, no task waits on
        its queue: wake is called whenever something is queued for it."""
        if self._closed:
            raise HubClosed("the live hub is closed (the process is shutting down)")
        sub = Subscriber(viewer, broadcast, sink, wake=wake)
        state = (await self.relations([viewer]))[viewer]
        sub.followees, sub.hidden = state.followees, state.hidden
        del state
        async with self._lock:
            if self._closed:  # closed while relationships were read
                raise HubClosed("the live hub is closed (the process is shutting down)")
            self._subscribers.add(sub)
            LIVE_SUBSCRIBERS.inc()
            self._add(self._by_user, viewer, sub, new=True)
            for author in sub.authors():
                self._add(self._by_author, author, sub, new=True)
            try:
                await self._sync_channels()
            except BaseException:
                # Cancelled or failed half-way: registered, it would never be detached.
                self._unregister(sub)
                raise
        return sub

    def _unregister(self, sub: Subscriber) -> None:
        """Take sub out of the hub now (under the lock); its channels are synced later."""
        sub.gone = True
        if sub not in self._subscribers:
            return
        self._subscribers.discard(sub)
        LIVE_SUBSCRIBERS.dec()
        self._drop(self._by_user, sub.viewer, sub)
        for author in sub.authors():
            self._drop(self._by_author, author, sub)

    async def detach(self, sub: Subscriber) -> None:
        """Unregister sub: nothing more is delivered to it, even by a delivery under way."""
        sub.gone = True  # at once: the lock may be held across a delivery's awaits
        async with self._lock:
            self._unregister(sub)
            with contextlib.suppress(RedisError, OSError):
                await self._sync_channels()

    def _add(self, index: _Index, key: int, sub: Subscriber, *, new: bool = False) -> None:
        if index.add(key, sub, new=new):
            self._dirty.add((index is self._by_author, key))

    def _drop(self, index: _Index, key: int, sub: Subscriber) -> None:
        if index.drop(key, sub):
            self._dirty.add((index is self._by_author, key))

    def _wanted(self) -> set[str]:
        return {self.channels.author(a) for a in self._by_author} | {
            self.channels.user(u) for u in self._by_user
        }

    async def _sync_channels(self) -> None:
        """Subscribe to what connected viewers need and unsubscribe from the rest (of what changed)."""
        if self._closed:
            # A subscriber leaving after close (its stream ending during shutdown): nothing to
            # unsubscribe from, and no connection or task to open for it.
            self._dirty.clear()
            return
        if self._pubsub is None:
            self._pubsub = open_subscription(self._redis)
        pubsub = self._pubsub  # close may take it away while this awaits
        added: list[str] = []
        removed: list[str] = []
        for is_author, key in self._dirty:
            channel = self.channels.author(key) if is_author else self.channels.user(key)
            # A key dirty twice over (its last subscriber left and another came) is subscribed
            # again, or unsubscribed while not subscribed: both are no-ops for Redis.
            if key in (self._by_author if is_author else self._by_user):
                added.append(channel)
            else:
                removed.append(channel)
        if added:
            await pubsub.subscribe(*added)
        if removed:
            await pubsub.unsubscribe(*removed)
        # Only once both went out: a failed sync leaves them dirty, and the next one retries.
        self._dirty.clear()
        if self._closed:
            return  # closed while this awaited: no task is started again
        self._listening = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="live-hub")
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_forever(), name="live-hub-refresh")

    async def _listen(self) -> None:
        """Read notices forever; after a Redis failure, resubscribe and tell everyone to resync.

        Anything that goes wrong while reading (including a reconnect that failed and left no
        subscription) waits with back-off and reconnects: retrying at once would spin the
        process without ever listening again. A notice that fails to dispatch loses only itself.
        """
        backoff = 0.1
        while True:
            try:
                if self._pubsub is None:
                    raise RedisConnectionError("not subscribed: the last reconnect failed")
                message = await self._pubsub.next_message(wait=1.0)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live hub lost Redis (%s); resubscribing", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                await self._reconnect()
                continue
            if message is None:
                continue
            try:
                await self._dispatch(message[0], Notice.decode(message[1]))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live hub: failed to dispatch a notice")

    async def _reconnect(self) -> None:
        async with self._lock:
            if self._closed:
                return
            old, self._pubsub = self._pubsub, None
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.aclose()
            self._listening = False
            self._dirty.clear()  # resubscribing to everything wanted covers them
            try:
                self._pubsub = open_subscription(self._redis)
                wanted = self._wanted()
                if wanted:
                    await self._pubsub.subscribe(*wanted)
                self._listening = True
            except (RedisError, OSError):
                return  # next loop iteration fails again and retries with backoff
        # Relationship notices sent while we were away are lost too: re-read them before the
        # RESYNC, so what the client refetches and what the hub then sends agree. The RESYNC
        # covers any change found, so none is announced on its own.
        try:
            await self.refresh(announce=False)
        except (asyncpg.PostgresError, RedisError, OSError) as exc:
            log.warning("live hub could not re-read relationships after reconnecting: %s", exc)
        # Whatever happened while we were away is lost: every subscriber refetches.
        for sub in list(self._subscribers):
            sub.offer(RESYNC)

    async def _dispatch(self, channel: str, notice: Notice) -> None:
        _, kind, owner_text = channel.rsplit(":", 2)
        owner = int(owner_text)
        if kind == "author":
            await self._on_author(owner, notice)
        elif kind == "user":
            await self._on_user(owner, notice)

    async def _on_author(self, author: int, notice: Notice) -> None:
        lo, hi, to_self = notice.lo, notice.hi, notice.to_self
        # A notice for the author's own feed only (createPost's, a split fan-out's last): their
        # own subscriptions, not a pass over every follower's.
        members = self._by_user.get(author) if hi <= lo else self._by_author.get(author)
        # Indexed under the author means following it (or being it): only a mute or block is left
        # to check, and a viewer's hidden set is nearly always empty. One pass per notice over
        # every local follower: plain checks, no calls.
        targets = []
        for s in members:
            if s.gone or (s.hidden and author in s.hidden):
                continue
            viewer = s.viewer
            if (to_self and viewer == author) or (viewer != author and lo < viewer <= hi):
                targets.append(s)
        if not targets:
            return
        if notice.kind == "add":
            post = (await self._posts.by_ids([notice.post_id]))[0]
            if post is None:
                return  # deleted before anyone saw it
            event = LiveEvent(Kind.ADDED, post.id, author, post)
        elif notice.kind == "del":
            event = LiveEvent(Kind.REMOVED, notice.post_id, author)
        else:
            return
        together: dict[Broadcast, list[Subscriber]] = {}
        for sub in targets:
            if sub.broadcast is None or not sub.queue.empty():
                sub.offer(event)  # behind what is queued, in order
            elif sub.admit(event):
                together.setdefault(sub.broadcast, []).append(sub)
        for broadcast, subs in together.items():
            try:
                sent = await broadcast.deliver(event, subs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live hub: rendering an event once failed; sending it per subscriber")
                for sub in subs:
                    sub.enqueue(event)
                continue
            if sent:
                _DELIVERED[event.kind].inc(sent)

    async def _on_user(self, viewer: int, notice: Notice) -> None:
        subs = list(self._by_user.get(viewer))
        if not subs:
            return
        generations = [s.generation for s in subs]
        state = (await self.relations([viewer]))[viewer]
        async with self._lock:
            revealed: list[Subscriber] = []
            try:
                for sub, generation in zip(subs, generations, strict=True):
                    if sub.generation == generation and sub in self._subscribers:
                        await self._apply(sub, state, revealed)
                await self._sync_channels()
            finally:
                _resync(revealed)

    async def refresh(self, *, announce: bool = True) -> None:
        """Re-read every subscriber's relationships and act on what changed since the hub last knew.

        Heals lost relationship notices. With announce, hidden authors' posts get REMOVED and
        revealed authors a RESYNC, as if the notice had arrived.
        """
        subs = list(self._subscribers)
        for start in range(0, len(subs), REFRESH_BATCH):
            batch = subs[start : start + REFRESH_BATCH]
            generations = [s.generation for s in batch]
            states = await self.relations(sorted({s.viewer for s in batch}))
            async with self._lock:
                revealed: list[Subscriber] | None = [] if announce else None
                try:
                    for sub, generation in zip(batch, generations, strict=True):
                        # A notice handled meanwhile read newer relationships than ours: keep them.
                        if sub.generation == generation and sub in self._subscribers:
                            await self._apply(sub, states[sub.viewer], revealed)
                    await self._sync_channels()
                finally:
                    _resync(revealed or [])

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live hub: failed to re-read relationships; retrying next round")

    async def _apply(self, sub: Subscriber, state: Relations, revealed: list[Subscriber] | None) -> None:
        """Make the hub's view of sub's relationships state (under the lock), telling the client
        (unless revealed is None): REMOVED at once, and sub added to revealed if it is owed a
        RESYNC, which the caller sends once the new authors' channels are subscribed."""
        sub.generation += 1
        if sub.followees == state.followees and sub.hidden == state.hidden:
            return
        old, new = set(sub.followees), set(state.followees)
        for author in old - new - {sub.viewer}:
            self._drop(self._by_author, author, sub)
        for author in new - old:
            self._add(self._by_author, author, sub)
        before = sub.visible()
        sub.followees, sub.hidden = state.followees, state.hidden
        after = sub.visible()
        if revealed is None:
            return
        if before - after:
            await self._removed(sub, before - after)
        if after - before:
            # Their earlier posts are now in the feed (a follow merges them at once): refetch,
            # but only once the hub listens to the new authors, or a post between the refetch
            # and the SUBSCRIBE would be in neither.
            revealed.append(sub)

    async def _removed(self, sub: Subscriber, authors: Sequence[int] | set[int]) -> None:
        """Tell a subscriber that posts it may have on screen left its feed."""
        rows = await self._pool.fetch(
            """SELECT p.id, p.author_id FROM unnest($1::bigint[]) AS a(id)
               CROSS JOIN LATERAL (SELECT id, author_id FROM posts
                                   WHERE author_id = a.id AND deleted_at IS NULL
                                   ORDER BY id DESC LIMIT $2) p""",
            list(authors),
            ON_SCREEN,
        )
        for r in rows:
            sub.offer(LiveEvent(Kind.REMOVED, r["id"], r["author_id"]))

    async def close(self) -> None:
        """Stop listening and refreshing, and close the subscription connection, for good.

        Not under the lock: a sync stuck on a hung Redis would hold up shutdown. What runs later
        (a subscriber detaching as its stream ends, a sync that was under way) finds the hub
        closed and touches no connection.
        """
        self._closed = True
        for task in (self._task, self._refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        pubsub, self._pubsub = self._pubsub, None
        self._listening = False
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def _resync(subs: list[Subscriber]) -> None:
    """Send RESYNC to each of subs (the hub listens to their new authors by now)."""
    for sub in subs:
        sub.offer(RESYNC)

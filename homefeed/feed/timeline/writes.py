"""Every write to home timelines and pulled authors' recent lists, addressed by user id.

Feeds owns the one instance of a process and exposes it only through its own methods,
so no caller names a key or encodes an entry. Fan-out appends go through the bulk
writer (its own connection, batches pipelined with one in flight); rewrites go through
IdLists (WATCH transactions on one key); seeding's built timelines go out as pipelined
SETs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from homefeed.feed.redis_client import RedisClient, is_cluster
from homefeed.feed.timeline.bulk_writer import REPLY_TIMEOUT, BulkWriter
from homefeed.feed.timeline.cluster_writer import ClusterBulkWriter
from homefeed.feed.timeline.encoding import Ids, built, encode, encode_id
from homefeed.feed.timeline.keys import Keys
from homefeed.feed.timeline.lists import IdLists
from homefeed.feed.timeline.slots import SlotMap

# Built timelines per pipelined round trip when seeding.
SET_BATCH = 500


@dataclass(frozen=True, slots=True)
class BuiltTimeline:
    """A user's whole timeline, computed elsewhere (seeding): ids ascending, at most the bound."""

    user_id: int
    ids: Ids
    whole_history: bool  # nothing older than these ids exists for this user's feed
    ttl: int  # seconds the timeline stays, > 0


class TimelineWrites:
    """Appends, merges, removals, trims and rebuilds of the lists under one key prefix."""

    def __init__(
        self,
        redis: RedisClient,
        url: str | None,
        keys: Keys,
        lists: IdLists,
        *,
        timeline_ttl: int,
        recent_ttl: int,
        slots: SlotMap | None = None,
        write_timeout: float = REPLY_TIMEOUT,
    ) -> None:
        self._redis = redis
        self._url = url
        self._keys = keys
        self._lists = lists
        self._timeline_ttl = timeline_ttl
        self._recent_ttl = recent_ttl
        self._max_bytes = lists.max_bytes
        self._bulk: BulkWriter | None = None
        # How long the bulk writer waits for Redis to take a step before failing the write.
        self._write_timeout = write_timeout
        # On a cluster, appends are routed by slot (over the caller's map of it, if it has one).
        if slots is None and url and is_cluster(redis):
            slots = SlotMap(url)
        self._slots = slots

    async def close(self) -> None:
        """Close the bulk writer's connection (the next append reconnects)."""
        if self._bulk is not None:
            await self._bulk.close()

    # ---- appends ------------------------------------------------------------------------------

    async def push(self, user_ids: Sequence[int], post_id: int) -> None:
        """Append a post to these users' timelines, creating (untrusted) the missing ones."""
        tags = user_ids if self._keys.tags_are_ids else None  # lets a cluster route without parsing keys
        await self._append(self._keys.timelines(user_ids), encode_id(post_id), self._timeline_ttl, tags)

    async def push_recent(self, author: int, post_id: int) -> None:
        """Append a post to a pulled author's recent list."""
        await self._append([self._keys.recent(author).encode()], encode_id(post_id), self._recent_ttl)

    async def _append(
        self, keys: Sequence[bytes], entry: bytes, ttl: int, tags: Sequence[int] | None = None
    ) -> None:
        # Safe even for a redone or slow job: an id landing below a list's floor is ignored by
        # readers (the list does not vouch for that range), and a repeat is deduplicated.
        appended = await self._writer().append(keys, entry, ttl=ttl, max_bytes=self._max_bytes, tags=tags)
        for key in appended.overgrown:
            await self._lists.trim(key.decode())

    def _writer(self) -> BulkWriter:
        if self._bulk is None:
            if not self._url:
                raise RuntimeError("timeline appends need settings.redis_url (their own connection)")
            self._bulk = (
                ClusterBulkWriter(self._slots, self._write_timeout)
                if self._slots
                else BulkWriter(self._url, self._write_timeout)
            )
        return self._bulk

    async def replicated(self) -> None:
        """On a cluster, a replication barrier on every master (see ClusterBulkWriter.replicated)."""
        if self._slots is not None:
            writer = self._writer()
            assert isinstance(writer, ClusterBulkWriter)
            await writer.replicated()

    # ---- merges and removals ------------------------------------------------------------------

    async def add(self, user_ids: Sequence[int], post_ids: Sequence[int], *, more_before: bool) -> None:
        """Merge posts into each of these users' timelines (see IdLists.add), one rewrite each."""
        for user in user_ids:
            await self._lists.add(
                self._keys.timeline(user), post_ids, self._timeline_ttl, more_before=more_before
            )

    async def remove(self, user_id: int, post_ids: Sequence[int]) -> None:
        """Remove posts from a user's timeline (a missing timeline stays missing)."""
        await self._lists.remove(self._keys.timeline(user_id), post_ids)

    async def remove_recent(self, author: int, post_ids: Sequence[int]) -> None:
        """Remove posts from a pulled author's recent list."""
        await self._lists.remove(self._keys.recent(author), post_ids)

    async def keep_alive(self, user_id: int) -> None:
        """Give a user's timeline its full term again."""
        await self._lists.expire(self._keys.timeline(user_id), self._timeline_ttl)

    # ---- rebuilds -----------------------------------------------------------------------------

    async def rebuild(self, user_id: int, post_ids: Sequence[int], *, whole_history: bool) -> None:
        """Merge a user's timeline as PostgreSQL computed it into what is stored, and mark it built."""
        await self._lists.rebuild(
            self._keys.timeline(user_id), post_ids, self._timeline_ttl, whole_history=whole_history
        )

    async def rebuild_recent(self, author: int, post_ids: Sequence[int], *, whole_history: bool) -> None:
        """The same for a pulled author's recent list."""
        await self._lists.rebuild(
            self._keys.recent(author), post_ids, self._recent_ttl, whole_history=whole_history
        )

    async def write_built(self, timelines: Sequence[BuiltTimeline]) -> None:
        """Store whole timelines as given, replacing what is there, in pipelined batches.

        For a bulk load only: nothing else writes meanwhile, so no merge is needed.
        """
        for start in range(0, len(timelines), SET_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for t in timelines[start : start + SET_BATCH]:
                    blob = built(t.ids, whole_history=t.whole_history)
                    pipe.set(self._keys.timeline(t.user_id), encode(blob), ex=t.ttl)
                await pipe.execute()

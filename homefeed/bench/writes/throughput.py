"""1. Fan-out throughput: the real outbox -> worker path, the BulkWriter alone, and the redis-py baseline."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from redis import Redis as SyncRedis

from homefeed.bench.errors import SEED_HINT, BenchError
from homefeed.bench.writes.base import BOTTOM, BenchBase, as_text, timer
from homefeed.feed.ids import make_id
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.timeline.bulk_writer import BATCH, BulkWriter
from homefeed.feed.timeline.encoding import encode_id
from homefeed.feed.timeline.lists import ListQuery
from homefeed.workers.fanout_worker import FanoutWorker


class Throughput(BenchBase):
    """Timeline writes per second of the real path, and of its baselines."""

    async def _throughput(self) -> dict[str, Any]:
        self.log("fan-out throughput: picking authors with the most active followers ...")
        threshold = self.s.settings.celebrity_threshold
        rows = await self.pool.fetch(
            """SELECT id, follower_count FROM users
               WHERE fanout_mode = 0 AND follower_count < $1 AND follower_count > 0
               ORDER BY follower_count DESC, id LIMIT 64""",
            min(threshold, 2.0**62),
        )
        authors: list[tuple[int, list[int]]] = []
        union: set[int] = set()
        total = 0
        for r in rows:
            followers = await self._active_followers(r["id"])
            authors.append((r["id"], followers))
            union.update(followers)
            union.add(r["id"])
            total += len(followers) + 1
            if total >= self.opt.fanout_keys:
                break
        if not authors:
            raise BenchError(f"no pushed author with followers found: {SEED_HINT}")
        self.log(
            f"  {len(authors)} authors, {total:,} writes a round over {len(union):,} timelines;"
            " warming up ..."
        )
        await self._warm_up(sorted(union))
        keys = [self.tl(u) for a, f in authors for u in (a, *f)]
        base_keys = await self._baseline_sets(keys[: self.opt.baseline_keys])
        worker = FanoutWorker(self.s)
        writer = BulkWriter(self.s.settings.redis_url or "")
        # The baseline is the faster of redis-py's two clients: the blocking one packs and parses a
        # pipeline faster than the asyncio one (run in a thread; nothing else runs then).
        sync_redis = SyncRedis.from_url(self.s.settings.redis_url or "")
        keep = self.size + 1
        try:
            # One untimed round: connections, prepared statements, the script cache.
            for author, _ in authors:
                await self._create_post(author, "bench warm-up")
            await worker.drain()

            real_s: list[float] = []
            real_writes = 0
            ours_s: list[float] = []
            base_s: list[float] = []
            base_async_s: list[float] = []
            deadline = time.perf_counter() + self.opt.seconds * 3
            rounds = 0
            while rounds < 2 or (time.perf_counter() < deadline and rounds < 50):
                rounds += 1
                for author, _ in authors:
                    await self._create_post(author, f"bench fan-out round {rounds}")
                with timer(real_s):
                    await worker.drain()
                real_writes += total
                member = self.members.next()
                with timer(ours_s):
                    await self._writer_alone(writer, keys, member)
                member = self.members.next()
                with timer(base_s):
                    await asyncio.to_thread(_baseline_add_sync, sync_redis, base_keys, member, keep)
                member = self.members.next()
                with timer(base_async_s):
                    await _baseline_add(self.redis, base_keys, member, keep)
        finally:
            sync_redis.close()
            await writer.close()  # the worker's own writes close with the services
        # Medians of the per-round rates: a round slowed by a neighbour's burst on this shared
        # machine counts once, not by its length.
        writes_per_s = statistics.median(total / t for t in real_s)
        ours = statistics.median(len(keys) / t for t in ours_s)
        base = statistics.median(len(base_keys) / t for t in base_s)
        base_async = statistics.median(len(base_keys) / t for t in base_async_s)
        self.log(
            f"  {rounds} rounds: real path {writes_per_s:,.0f}/s, BulkWriter {ours:,.0f}/s,"
            f" redis-py {base:,.0f}/s (asyncio client {base_async:,.0f}/s)"
        )
        await self._check_delivered(authors)
        return {
            "writes_per_s": writes_per_s,
            "baseline_writes_per_s": base,
            "baseline_async_writes_per_s": base_async,
            "bulkwriter_writes_per_s": ours,
            "fanout_writes": real_writes,
            "fanout_seconds": sum(real_s),
            "authors": [{"author": a, "active_followers": len(f)} for a, f in authors],
        }

    async def _writer_alone(self, writer: BulkWriter, keys: Sequence[bytes], member: bytes) -> None:
        """What Fanout does per batch of keys, without PostgreSQL: append, then rewrite the overgrown."""
        appended = await writer.append(keys, member, ttl=self.ttl, max_bytes=self.lists.max_bytes)
        for key in appended.overgrown:
            await self.lists.trim(key.decode())

    async def _baseline_sets(self, keys: Sequence[bytes]) -> list[bytes]:
        """Default sorted sets beside the given timelines, as full, for the redis-py baseline to write.

        Members are the 7-byte ids scored by id, the obvious layout; the encoding is the server
        default for 800 entries (a skiplist), as a plain implementation would get.
        """
        sample = next(iter(self.warm))
        ids = [
            i
            for i in (await self.lists.read([ListQuery(self.keys.timeline(sample), None, self.size)]))[0].ids
            if i != BOTTOM
        ]
        low = min(ids, default=make_id(int(time.time() * 1000) - 86_400_000, 0))
        ids += [low - 4096 * (j + 1) for j in range(self.size - len(ids))]
        shadow = [k + b":zbase" for k in keys]
        template = f"{self.keys.prefix}:{{zbase}}:template".encode()
        began = time.perf_counter()
        async with self._default_zset_limit():
            await self.redis.zadd(template, {encode_id(i): i for i in ids})
            dumped = await self.redis.dump(template)
            assert dumped is not None
            for start in range(0, len(shadow), 1000):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in shadow[start : start + 1000]:
                        pipe.restore(key, self.ttl * 1000, dumped, True)
                    await pipe.execute()
        encoding = await self.redis.object("encoding", shadow[0])
        self.log(
            f"  baseline: {len(shadow):,} default sorted sets of {len(ids)} entries ({as_text(encoding)})"
            f" in {time.perf_counter() - began:.1f} s"
        )
        return shadow

    async def _check_delivered(self, authors: Sequence[tuple[int, Sequence[int]]]) -> None:
        """The last post of each author must be in its followers' timelines (a sample)."""
        missing = 0
        checked = 0
        for author, followers in authors:
            last = max(p for a, p in self.created if a == author)
            sample = self.rng.sample(list(followers), min(50, len(followers)))
            found = await self._holding(sample, last)
            checked += len(found)
            missing += found.count(False)
        if missing:
            self.notes.append(
                f"fan-out check: {missing} of {checked} sampled timelines lack the last post"
                " (another process's worker took the job?)"
            )


def _baseline_add_sync(redis: SyncRedis, keys: Sequence[bytes], member: bytes, keep: int) -> None:
    """The baseline: a plain (blocking) redis-py pipeline, ZADD + trim per key, BulkWriter's batch size."""
    score = int.from_bytes(member, "big")
    for start in range(0, len(keys), BATCH):
        pipe = redis.pipeline(transaction=False)
        for key in keys[start : start + BATCH]:
            pipe.zadd(key, {member: score})
            pipe.zremrangebyrank(key, 0, -keep - 1)
        pipe.execute()


async def _baseline_add(redis: RedisClient, keys: Sequence[bytes], member: bytes, keep: int) -> None:
    """The same with redis-py's asyncio client (reported beside the baseline)."""
    score = int.from_bytes(member, "big")
    for start in range(0, len(keys), BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + BATCH]:
                pipe.zadd(key, {member: score})
                pipe.zremrangebyrank(key, 0, -keep - 1)
            await pipe.execute()

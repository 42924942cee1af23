"""5. Memory: MEMORY USAGE per timeline entry, beside a default sorted set of decimal-string ids.

Two figures, because a timeline's allocation is not its length. A rewrite (SET) leaves the
string at about its length; an APPEND that outgrows that doubles the allocation (the engines'
greedy string growth, Redis and Valkey alike), and appends then fill that until the next
rewrite. So a full timeline just written whole (`rewritten_bytes_per_entry`; the seeded
world's, sampled, are `sampled_bytes_per_entry`) holds about half of what one holds while
fan-out appends to it; `bytes_per_entry`, the
figure the capacity model sizes Redis by, is the mean over one whole rewrite/append cycle
driven through the service's own writer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from homefeed.bench.writes.base import BenchBase, as_text
from homefeed.feed.ids import make_id
from homefeed.feed.redis_client import RedisClient
from homefeed.feed.timeline.bulk_writer import BulkWriter
from homefeed.feed.timeline.encoding import encode_id


class Memory(BenchBase):
    """Bytes per entry over full timelines, and of the default sorted set they replace."""

    async def _memory(self) -> dict[str, Any]:
        self.log("memory: MEMORY USAGE over full timelines ...")
        users = list(self.warm)
        self.rng.shuffle(users)
        chosen: list[tuple[bytes, int]] = []
        fallback: list[tuple[bytes, int]] = []
        for start in range(0, len(users), 500):
            part = users[start : start + 500]
            cards = await self._sizes(part)
            for user, card in zip(part, cards, strict=True):
                if card >= self.size:
                    chosen.append((self.tl(user), card))
                elif card:
                    fallback.append((self.tl(user), card))
            if len(chosen) >= self.opt.memory_keys:
                break
        if len(chosen) < min(100, self.opt.memory_keys):
            self.notes.append(f"memory: only {len(chosen)} full timelines; fuller ones added to the sample")
            fallback.sort(key=lambda kc: -kc[1])
            chosen += fallback[: self.opt.memory_keys - len(chosen)]
        chosen = chosen[: self.opt.memory_keys]
        if not chosen:
            return {
                "bytes_per_entry": float("nan"),
                "timelines": 0,
                "entries_per_timeline": 0.0,
                "encoding": "",
            }
        used, encoding = await _memory_used(self.redis, [k for k, _ in chosen])
        entries = sum(c for _, c in chosen)
        bytes_per_entry = used / entries
        return {
            "bytes_per_entry": bytes_per_entry,
            "timelines": len(chosen),
            "entries_per_timeline": entries / len(chosen),
            "encoding": encoding,
        }

    async def _cycle(self) -> dict[str, float]:
        """Bytes per timeline over one rewrite/append cycle of the real write path, per entry of the bound.

        Full timelines are rebuilt (SET, as IdLists writes them), then one id a round is
        appended to all of them by the fan-out writer, and the overgrown are trimmed by
        IdLists as the worker does, until the first trim: every state of the cycle (just
        rewritten, then each append up to the bound) is sampled once, as each lasts one append.
        Divided by the bound (the timeline size), it is what the capacity model multiplies by
        that size.
        """
        count = max(20, self.opt.memory_keys // 4)
        keys = [f"{self.keys.prefix}:{{cycle{i}}}:timeline" for i in range(count)]
        base = make_id(int(time.time() * 1000) - 86_400_000, 0)
        for n, key in enumerate(keys):
            ids = [base + (n * self.size + j) * 4096 for j in range(self.size)]
            await self.lists.rebuild(key, ids, self.ttl, whole_history=False)
        raw = [k.encode() for k in keys]
        rewritten = (await _memory_used(self.redis, raw))[0]
        writer = BulkWriter(self.s.settings.redis_url or "")
        samples: list[int] = []
        post = base + (count + 1) * self.size * 4096
        try:
            trimmed = False
            while not trimmed:
                post += 4096
                done = await writer.append(raw, encode_id(post), ttl=self.ttl, max_bytes=self.lists.max_bytes)
                for grown in done.overgrown:
                    await self.lists.trim(grown.decode())
                # Every list takes the same appends, so all are trimmed in the same round.
                trimmed = bool(done.overgrown)
                samples.append((await _memory_used(self.redis, raw))[0])
        finally:
            await writer.close()
            await self.redis.unlink(*raw)
        mean = sum(samples) / len(samples) / count
        return {
            "bytes_per_entry": mean / self.size,
            "rewritten_bytes_per_entry": rewritten / count / self.size,
            "peak_bytes_per_entry": max(samples) / count / self.size,
            "rounds": float(len(samples)),
            "timelines": float(count),
        }

    async def _default_zset_cost(self) -> tuple[float, str]:
        """Bytes per entry of a default sorted set: 800 decimal-string ids scored by id."""
        count = max(100, self.opt.memory_keys // 2)
        keys = [f"{self.keys.prefix}:{{cmp{i}}}:zset".encode() for i in range(count)]
        base = make_id(int(time.time() * 1000) - 86_400_000, 0)
        entries = max(self.size, 800)
        async with self._default_zset_limit(), self.redis.pipeline(transaction=False) as pipe:
            for n, key in enumerate(keys):
                ids = [base + (n * entries + j) * 4096 for j in range(entries)]
                pipe.zadd(key, {str(i): i for i in ids})
            await pipe.execute()
        used, encoding = await _memory_used(self.redis, keys)
        await self.redis.unlink(*keys)
        return used / (count * entries), encoding


async def _memory_used(redis: RedisClient, keys: Sequence[bytes]) -> tuple[int, str]:
    """MEMORY USAGE (exact: SAMPLES 0) summed over keys, and the encodings seen."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
            pipe.object("encoding", key)
        replies = await pipe.execute()
    used = sum(int(replies[i] or 0) for i in range(0, len(replies), 2))
    encodings = sorted({as_text(replies[i]) for i in range(1, len(replies), 2)})
    return used, "/".join(encodings)

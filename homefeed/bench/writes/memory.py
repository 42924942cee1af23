"""5. Memory: MEMORY USAGE per timeline entry, beside a default sorted set of decimal-string ids."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from homefeed.bench.writes.base import BenchBase, as_text
from homefeed.feed.ids import make_id
from homefeed.feed.redis_client import RedisClient


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

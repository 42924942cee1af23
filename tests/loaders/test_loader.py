"""homefeed.loaders.Loader: batching, and a shared cached value that survives a cancelled sibling."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from homefeed.loaders import Loader


async def test_loads_of_one_tick_make_one_batch() -> None:
    batches: list[list[int]] = []

    async def batch(keys: Sequence[int]) -> list[str]:
        batches.append(list(keys))
        return [f"v{k}" for k in keys]

    loader: Loader[int, str] = Loader(batch)
    assert list(await asyncio.gather(loader.load(1), loader.load(2), loader.load(1))) == ["v1", "v2", "v1"]
    assert batches == [[1, 2]]


async def test_a_cancelled_load_does_not_cancel_the_value_others_share() -> None:
    # The executor cancels a failed field's pending siblings; a sibling that loaded the same
    # key as a field elsewhere shares its cached future, which must keep going for the other.
    release = asyncio.Event()

    async def batch(keys: Sequence[int]) -> list[str]:
        await release.wait()
        return [f"v{k}" for k in keys]

    loader: Loader[int, str] = Loader(batch)
    cancelled = asyncio.ensure_future(loader.load(7))
    survivor = asyncio.ensure_future(loader.load(7))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await survivor == "v7"
    assert cancelled.cancelled()
    assert await loader.load(7) == "v7"  # the cache still holds the value, not a cancelled future
    assert await loader.load_many([7, 8]) == ["v7", "v8"]

"""A Redis client that counts its round trips, for tests that bound them."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


class CountingRedis(Redis):
    """Counts round trips: each command sent alone, each pipeline executed."""

    round_trips = 0

    async def execute_command(self, *args: object, **options: object) -> object:
        self.round_trips += 1
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        run = pipe.execute

        async def execute(raise_on_error: bool = True) -> list[Any]:
            self.round_trips += 1
            return await run(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe

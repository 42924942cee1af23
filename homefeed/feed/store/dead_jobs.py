"""The dead-letter table: outbox jobs that ran out of attempts, kept until someone retries or drops them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class DeadJob:
    id: int
    kind: str
    actor_id: int
    subject_id: int
    range_lo: int | None
    range_hi: int | None
    created_at: dt.datetime
    attempts: int
    last_error: str
    died_at: dt.datetime


class DeadJobs:
    """Lists, retries and drops dead jobs; `None` as the ids means all of them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def all(self) -> list[DeadJob]:
        """Every dead job, oldest first."""
        rows = await self._pool.fetch(
            """SELECT id, kind, actor_id, subject_id, range_lo, range_hi, created_at, attempts,
                      last_error, died_at
               FROM dead_jobs ORDER BY id"""
        )
        return [DeadJob(**dict(r)) for r in rows]

    async def retry(self, ids: Sequence[int] | None) -> list[int]:
        """Put dead jobs back into the outbox with no attempts spent; returns the ids moved.

        They keep their id and creation time, so they are claimed before newer work and the
        outbox's age shows how long they have waited.
        """
        moved = await self._pool.fetch(
            """WITH gone AS (
                   DELETE FROM dead_jobs WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[])
                   RETURNING id, kind, actor_id, subject_id, range_lo, range_hi, created_at)
               INSERT INTO outbox (id, kind, actor_id, subject_id, range_lo, range_hi, created_at)
               SELECT id, kind, actor_id, subject_id, range_lo, range_hi, created_at FROM gone
               RETURNING id""",
            None if ids is None else list(ids),
        )
        return sorted(r["id"] for r in moved)

    async def drop(self, ids: Sequence[int] | None) -> list[int]:
        """Forget dead jobs for good (an operator's decision); returns the ids dropped."""
        dropped = await self._pool.fetch(
            "DELETE FROM dead_jobs WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[]) RETURNING id",
            None if ids is None else list(ids),
        )
        return sorted(r["id"] for r in dropped)

"""The outbox: fan-out work committed with the change it describes, claimed by workers.

A claim is a lease: the row stays in the table with `available_at` pushed into
the future. A worker that finishes deletes it; one that dies lets the lease run
out, and another worker claims the job again. Jobs are idempotent, so doing one
twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

POST = "post"
POST_CHUNK = "post_chunk"
DELETE = "delete"
DRAIN_CHUNK = "drain_chunk"
FOLLOW = "follow"
UNFOLLOW = "unfollow"
BLOCK = "block"

MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    actor_id: int
    subject_id: int
    range_lo: int | None
    range_hi: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """A follower-id range (lo, hi] of one big job."""

    lo: int
    hi: int


class Outbox:
    """Claims, splits and completes jobs."""

    def __init__(self, pool: asyncpg.Pool, lease_seconds: float = 30.0) -> None:
        self._pool = pool
        self._lease = lease_seconds

    async def claim(self, limit: int) -> list[Job]:
        """Lease up to `limit` available jobs, oldest first, skipping rows other workers hold."""
        rows = await self._pool.fetch(
            """UPDATE outbox SET available_at = now() + make_interval(secs => $2), attempts = attempts + 1
               WHERE id IN (
                   SELECT id FROM outbox WHERE available_at <= now()
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING id, kind, actor_id, subject_id, range_lo, range_hi, attempts""",
            limit,
            self._lease,
        )
        jobs = [Job(**dict(r)) for r in rows]
        jobs.sort(key=lambda j: j.id)
        return jobs

    async def complete(self, job_ids: Sequence[int]) -> None:
        """Forget finished jobs."""
        if job_ids:
            await self._pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(job_ids))

    async def retry_later(self, job: Job, delay_seconds: float) -> None:
        """Make a failed job available again after a delay."""
        await self._pool.execute(
            "UPDATE outbox SET available_at = now() + make_interval(secs => $2) WHERE id = $1",
            job.id,
            delay_seconds,
        )

    async def split(self, job: Job, kind: str, chunks: Sequence[Chunk]) -> None:
        """Replace a job by one job per chunk, atomically, so other workers can share them."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                """INSERT INTO outbox (kind, actor_id, subject_id, range_lo, range_hi)
                   VALUES ($1, $2, $3, $4, $5)""",
                [(kind, job.actor_id, job.subject_id, c.lo, c.hi) for c in chunks],
            )
            await conn.execute("DELETE FROM outbox WHERE id = $1", job.id)

    async def enqueue(self, kind: str, actor_id: int, subject_id: int) -> None:
        """Add a job outside any other change (used by workers for follow-up work)."""
        await self._pool.execute(
            "INSERT INTO outbox (kind, actor_id, subject_id) VALUES ($1, $2, $3)", kind, actor_id, subject_id
        )

    async def pending(self) -> int:
        """How many jobs are waiting or leased."""
        count: int = await self._pool.fetchval("SELECT count(*) FROM outbox")
        return count

    async def others_of(self, job: Job) -> int:
        """How many other jobs of the same kind and actor remain (for chunked work finishing)."""
        count: int = await self._pool.fetchval(
            "SELECT count(*) FROM outbox WHERE actor_id = $1 AND kind = $2 AND id <> $3",
            job.actor_id,
            job.kind,
            job.id,
        )
        return count

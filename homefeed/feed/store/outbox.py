"""The outbox: fan-out work committed with the change it describes, claimed by workers.

A claim is a lease: the row stays in the table with `available_at` pushed into
the future. A worker that finishes deletes it; one that dies lets the lease run
out, and another worker claims the job again. Jobs are idempotent, so doing one
twice is harmless.

A lease is short and names its holder: the worker's heartbeat renews the jobs it still
holds (`renew`), so a dead worker's jobs come back within one lease while a slow job is
never handed to a second worker. A job claimed `max_attempts` times without finishing
moves, with its last error, to the `dead_jobs` table in the statement that takes it out
of the outbox (`bury`, `sample`): nothing is dropped silently, nothing retried forever.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

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


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a heartbeat found: jobs whose lease it extended, and jobs another worker now holds.

    A job in neither is gone from the outbox (completed, split or buried by someone).
    """

    kept: frozenset[int]
    taken: frozenset[int]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """One sample of the outbox, and the kinds of abandoned jobs the sample buried."""

    depth: int
    oldest_age_seconds: float
    dead: int
    buried: tuple[str, ...]


ABANDONED = "abandoned: its lease ran out on the last attempt (worker killed or stalled)"


class Outbox:
    """Claims, renews, splits, completes and buries jobs, as one lease holder."""

    def __init__(self, pool: asyncpg.Pool, lease_seconds: float = 3.0, max_attempts: int = 10) -> None:
        self._pool = pool
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        # Each Outbox is one holder: a worker, or a test standing for one.
        self.holder = uuid.uuid4()

    @property
    def lease_seconds(self) -> float:
        """How long a claim or a renewal holds a job."""
        return self._lease

    async def claim(self, limit: int) -> list[Job]:
        """Lease up to `limit` available jobs, oldest first, skipping rows other workers hold."""
        # A job out of attempts is not claimed again: `sample` buries it.
        rows = await self._pool.fetch(
            """UPDATE outbox SET available_at = now() + make_interval(secs => $2), attempts = attempts + 1,
                                 leased_by = $3
               WHERE id IN (
                   SELECT id FROM outbox WHERE available_at <= now() AND attempts < $4
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING id, kind, actor_id, subject_id, range_lo, range_hi, attempts""",
            limit,
            self._lease,
            self.holder,
            self._max_attempts,
        )
        jobs = [Job(**dict(r)) for r in rows]
        jobs.sort(key=lambda j: j.id)
        return jobs

    async def complete(self, job_ids: Sequence[int]) -> None:
        """Forget finished jobs."""
        if job_ids:
            await self._pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(job_ids))

    async def retry_later(self, job: Job, delay_seconds: float, error: str | None = None) -> bool:
        """Make a failed job available again after a delay, keeping its error; False if not ours now.

        A job another worker took over (our lease ran out) is left to that worker.
        """
        status: str = await self._pool.execute(
            """UPDATE outbox SET available_at = now() + make_interval(secs => $2),
                                 last_error = coalesce($4, last_error)
               WHERE id = $1 AND leased_by = $3""",
            job.id,
            delay_seconds,
            self.holder,
            error,
        )
        return status != "UPDATE 0"

    async def renew(self, job_ids: Sequence[int]) -> Renewal:
        """Extend the lease of every given job this holder still holds, in one statement."""
        if not job_ids:
            return Renewal(frozenset(), frozenset())
        # Both parts see the table as it was before the update: `taken` is what others hold.
        row = await self._pool.fetchrow(
            """WITH kept AS (
                   UPDATE outbox SET available_at = now() + make_interval(secs => $3)
                   WHERE id = ANY($1::bigint[]) AND leased_by = $2 RETURNING id)
               SELECT array(SELECT id FROM kept) AS kept,
                      array(SELECT id FROM outbox WHERE id = ANY($1::bigint[])
                            AND leased_by IS DISTINCT FROM $2) AS taken""",
            list(job_ids),
            self.holder,
            self._lease,
        )
        assert row is not None
        return Renewal(frozenset(row["kept"]), frozenset(row["taken"]))

    async def bury(self, job: Job, error: str) -> bool:
        """Move a job this holder holds to the dead-letter table with its error; False if not ours."""
        # One statement: the job leaves the outbox exactly when its dead letter is written.
        buried: int = await self._pool.fetchval(
            """WITH moved AS (
                   DELETE FROM outbox WHERE id = $1 AND leased_by = $2
                   RETURNING id, kind, actor_id, subject_id, range_lo, range_hi, created_at, attempts),
               dead AS (
                   INSERT INTO dead_jobs (id, kind, actor_id, subject_id, range_lo, range_hi,
                                          created_at, attempts, last_error)
                   SELECT id, kind, actor_id, subject_id, range_lo, range_hi, created_at, attempts, $3
                   FROM moved RETURNING 1)
               SELECT count(*) FROM dead""",
            job.id,
            self.holder,
            error,
        )
        return buried > 0

    async def sample(self) -> OutboxStats:
        """Bury jobs abandoned on their last attempt, and measure the outbox, in one statement."""
        row = await self._pool.fetchrow(
            """WITH abandoned AS (
                   SELECT id FROM outbox WHERE attempts >= $1 AND available_at <= now()
                   FOR UPDATE SKIP LOCKED),
               moved AS (
                   DELETE FROM outbox o USING abandoned a WHERE o.id = a.id
                   RETURNING o.id, o.kind, o.actor_id, o.subject_id, o.range_lo, o.range_hi,
                             o.created_at, o.attempts, o.last_error),
               dead AS (
                   INSERT INTO dead_jobs (id, kind, actor_id, subject_id, range_lo, range_hi,
                                          created_at, attempts, last_error)
                   SELECT id, kind, actor_id, subject_id, range_lo, range_hi, created_at, attempts,
                          coalesce(last_error || '; then ', '') || $2
                   FROM moved RETURNING kind)
               SELECT (SELECT count(*) FROM outbox) - (SELECT count(*) FROM dead) AS depth,
                      coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox)), 0)::float8
                          AS oldest,
                      (SELECT count(*) FROM dead_jobs) + (SELECT count(*) FROM dead) AS dead,
                      array(SELECT kind FROM dead) AS buried""",
            self._max_attempts,
            ABANDONED,
        )
        assert row is not None
        return OutboxStats(row["depth"], row["oldest"], row["dead"], tuple(row["buried"]))

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
        """How many other jobs of the same kind and actor are still in the outbox.

        Not a test of chunked work having finished: a worker deletes its batch's jobs only at the
        batch's end, so finished siblings still count. A drain's end is decided by `any_of` under
        the author's row lock, after the finishing chunk deleted itself (see job_runner).
        """
        count: int = await self._pool.fetchval(
            "SELECT count(*) FROM outbox WHERE actor_id = $1 AND kind = $2 AND id <> $3",
            job.actor_id,
            job.kind,
            job.id,
        )
        return count


# ---- inside a caller's transaction -----------------------------------------------------------------
# A change of an author's fan-out mode commits together with the jobs it needs (job_runner):
# these run on the caller's connection, inside its transaction, so the jobs exist exactly
# when the change does, and a failure between the two rolls both back.

Conn = asyncpg.Connection | PoolConnectionProxy


async def insert_chunks(
    conn: Conn, kind: str, actor_id: int, subject_id: int, chunks: Sequence[Chunk]
) -> None:
    """Queue one job per chunk in the caller's transaction."""
    await conn.executemany(
        """INSERT INTO outbox (kind, actor_id, subject_id, range_lo, range_hi)
           VALUES ($1, $2, $3, $4, $5)""",
        [(kind, actor_id, subject_id, c.lo, c.hi) for c in chunks],
    )


async def remove(conn: Conn, job_id: int) -> None:
    """Delete a job in the caller's transaction: a chunk that finished, so its siblings stop counting it."""
    await conn.execute("DELETE FROM outbox WHERE id = $1", job_id)


async def any_of(conn: Conn, actor_id: int, kind: str) -> bool:
    """Whether a job of this kind and actor is in the outbox (waiting, leased or running)."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE actor_id = $1 AND kind = $2)", actor_id, kind
    )
    return found

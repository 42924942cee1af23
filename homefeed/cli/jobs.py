"""`homefeed jobs list | retry | drop`: the dead-letter table, for an operator.

A job lands there after HOMEFEED_JOB_MAX_ATTEMPTS claims without finishing; nothing else
ever removes one, so a dead job waits here until someone retries or drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

import asyncpg

from homefeed.cli.servers import migrated_servers
from homefeed.feed.config import Settings
from homefeed.feed.store.dead_jobs import DeadJob, DeadJobs
from homefeed.feed.store.pool import create_pool

# A listed error is its last line (the exception), cut to fit a terminal row.
ERROR_WIDTH = 80


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = commands.add_parser("jobs", help="list, retry or drop dead fan-out jobs (the dead-letter table)")
    actions = jobs.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", help="dead jobs: id, kind, actor, subject, attempts, last error, when")
    ls.add_argument("--full", action="store_true", help="print each job's whole last error (traceback)")
    ls.set_defaults(run=run)
    for name, what in (
        ("retry", "put back into the outbox with no attempts spent"),
        ("drop", "forget for good"),
    ):
        act = actions.add_parser(name, help=f"dead jobs to {what}")
        act.add_argument("ids", nargs="*", type=int, metavar="ID", help="dead job ids")
        act.add_argument("--all", action="store_true", help="every dead job")
        act.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action != "list" and bool(args.ids) == bool(args.all):
        print(f"homefeed jobs {args.action}: give job ids or --all (not both)", file=sys.stderr)
        return 2
    with migrated_servers(settings) as ready:
        return asyncio.run(_run(ready, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        if args.action == "list":
            return await list_dead(pool, sys.stdout, full=args.full)
        ids = None if args.all else args.ids
        if args.action == "retry":
            return await retry_dead(pool, ids, sys.stdout)
        return await drop_dead(pool, ids, sys.stdout)
    finally:
        await pool.close()


async def list_dead(pool: asyncpg.Pool, out: TextIO, *, full: bool = False) -> int:
    """Print every dead job, one row each (and its whole error with `full`); returns the exit code."""
    dead = await DeadJobs(pool).all()
    if not dead:
        print("no dead jobs", file=out)
        return 0
    header = ("id", "kind", "actor", "subject", "attempts", "died", "last error")
    rows = [_row(job) for job in dead]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for r in (header, *rows):
        print("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip(), file=out)
    if full:
        for job in dead:
            print(f"\n--- job {job.id} ---\n{job.last_error.rstrip()}", file=out)
    print(f"{len(dead)} dead job(s)", file=out)
    return 0


async def retry_dead(pool: asyncpg.Pool, ids: Sequence[int] | None, out: TextIO) -> int:
    """Put the given dead jobs (None: all) back into the outbox; 1 if some id was not dead."""
    moved = await DeadJobs(pool).retry(ids)
    print(f"retried {len(moved)} job(s){_listed(moved)}", file=out)
    return _missing(ids, moved, out)


async def drop_dead(pool: asyncpg.Pool, ids: Sequence[int] | None, out: TextIO) -> int:
    """Forget the given dead jobs (None: all); 1 if some id was not dead."""
    dropped = await DeadJobs(pool).drop(ids)
    print(f"dropped {len(dropped)} job(s){_listed(dropped)}", file=out)
    return _missing(ids, dropped, out)


def _row(job: DeadJob) -> tuple[str, ...]:
    lines = [line for line in job.last_error.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    if len(last) > ERROR_WIDTH:
        last = last[: ERROR_WIDTH - 1] + "…"
    subject = str(job.subject_id)
    if job.range_lo is not None or job.range_hi is not None:
        subject += f" ({job.range_lo}, {job.range_hi}]"
    died = job.died_at.isoformat(timespec="seconds")
    return (str(job.id), job.kind, str(job.actor_id), subject, str(job.attempts), died, last)


def _listed(ids: Sequence[int]) -> str:
    return ": " + " ".join(map(str, ids)) if ids else ""


def _missing(asked: Sequence[int] | None, found: Sequence[int], out: TextIO) -> int:
    if asked is None:
        return 0
    missing = sorted(set(asked) - set(found))
    if missing:
        print(f"not in the dead-letter table: {' '.join(map(str, missing))}", file=out)
        return 1
    return 0

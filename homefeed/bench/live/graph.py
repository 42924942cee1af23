"""The graph the live bench works on: its authors and subscribers, and putting back what it changed."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from homefeed.bench.errors import SEED_HINT, BenchError
from homefeed.bench.live.api import post_pk
from homefeed.bench.live.base import Author, BenchBase

_FOLLOWERS = """
SELECT f.follower_id FROM followers f
WHERE f.followee_id = $1 AND f.follower_id <> $1
  AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = f.follower_id AND m.muted_id = $1)
  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = f.follower_id AND b.blocked_id = $1)
  AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = f.follower_id)
"""


class Graph(BenchBase):
    """Choosing the authors and subscribers, and restoring them afterwards."""

    async def _check_graph(self) -> int:
        users: int = await self.pool.fetchval("SELECT count(*) FROM users")
        if users < max(self.opt.min_users, 3):
            raise BenchError(
                f"the graph has {users:,} users, too small to measure (at least {self.opt.min_users:,}"
                f" wanted): {SEED_HINT}"
            )
        pending: int = await self.pool.fetchval("SELECT count(*) FROM outbox")
        if pending:
            # The server's worker would work through them first (inflating the lag), or another
            # bench's worker is running against this database and would take the bench's jobs.
            raise BenchError(
                f"the outbox holds {pending:,} pending jobs: let a worker (`homefeed worker`) finish them, "
                "and run no other bench meanwhile"
            )
        return users

    async def _authors(self) -> tuple[Author, Author]:
        columns = "id, follower_count, fanout_mode, pull_from"
        top = await self.pool.fetchrow(
            f"SELECT {columns} FROM users ORDER BY follower_count DESC, id LIMIT 1"
        )
        assert top is not None
        celebrity = Author(top["id"], top["follower_count"], top["fanout_mode"], top["pull_from"])
        row = await self.pool.fetchrow(
            f"""SELECT {columns} FROM users
                WHERE id <> $1 AND fanout_mode = 0 AND follower_count > 0 AND follower_count < $2
                ORDER BY abs(follower_count - $3), id LIMIT 1""",
            celebrity.id,
            celebrity.followers,
            self.opt.ordinary_followers,
        )
        if row is None:
            raise BenchError(f"no author with fewer followers than the most followed one: {SEED_HINT}")
        ordinary = Author(row["id"], row["follower_count"], row["fanout_mode"], row["pull_from"])
        return ordinary, celebrity

    async def _subscribers(
        self, ordinary: Author, celebrity: Author
    ) -> tuple[list[int], dict[str, set[int]], str, int]:
        """Subscribers (following both authors if enough do), and who of them sees each author's posts."""
        authors = {ordinary.id, celebrity.id}
        of_ordinary = {r[0] for r in await self.pool.fetch(_FOLLOWERS, ordinary.id)} - authors
        of_celebrity = {r[0] for r in await self.pool.fetch(_FOLLOWERS, celebrity.id)} - authors
        both = sorted(of_ordinary & of_celebrity)
        n = self.opt.subscribers
        if len(both) >= n:
            chosen, selection = self.rng.sample(both, n), "both"
        else:
            # Not enough users follow both: the rest follow one or the other, alternately.
            only_o = self.rng.sample(sorted(of_ordinary - of_celebrity), len(of_ordinary - of_celebrity))
            only_c = self.rng.sample(sorted(of_celebrity - of_ordinary), len(of_celebrity - of_ordinary))
            chosen = list(both)
            while len(chosen) < n and (only_o or only_c):
                for pool_ in (only_o, only_c):
                    if pool_ and len(chosen) < n:
                        chosen.append(pool_.pop())
            selection = "mixed"
            if len(chosen) < n:
                self.notes.append(f"only {len(chosen):,} users follow either author; {n:,} wanted")
        sees = {
            "ordinary": {i for i, u in enumerate(chosen) if u in of_ordinary},
            "celebrity": {i for i, u in enumerate(chosen) if u in of_celebrity},
        }
        return chosen, sees, selection, len(both)

    async def _restore(self, authors: Sequence[Author], seen: Sequence[asyncpg.Record]) -> None:
        """Drop the bench's post tombstones and put back what serving it changed."""
        ids = [post_pk(gid) for gid, _ in self.created]
        if ids:
            await self.pool.execute("DELETE FROM outbox WHERE subject_id = ANY($1::bigint[])", ids)
            await self.pool.execute(
                "DELETE FROM posts WHERE author_id = ANY($1::bigint[]) AND id = ANY($2::bigint[])",
                [a.id for a in authors],
                ids,
            )
        for author in authors:
            row = await self.pool.fetchrow(
                "SELECT fanout_mode, pull_from FROM users WHERE id = $1", author.id
            )
            if row is None or (row["fanout_mode"], row["pull_from"]) == (author.mode, author.pull_from):
                continue
            # The bench's threshold made the author pulled. With its posts gone nothing was posted
            # while pulled, so the old mode is exact again, and other benches (which pick pushed
            # authors) find the world as it was.
            pulled_since: bool = await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM posts WHERE author_id = $1 AND id >= $2)",
                author.id,
                row["pull_from"] or 0,
            )
            if pulled_since:
                self.notes.append(f"author {author.id} posted while pulled: fan-out mode left as it is")
                continue
            await self.pool.execute(
                "UPDATE users SET fanout_mode = $2, pull_from = $3 WHERE id = $1",
                author.id,
                author.mode,
                author.pull_from,
            )
        # A live viewer counts as active (fan-out reaches them); the bench's viewers were not real.
        await self.pool.executemany(
            "UPDATE users SET last_seen_at = $2 WHERE id = $1", [(r["id"], r["last_seen_at"]) for r in seen]
        )

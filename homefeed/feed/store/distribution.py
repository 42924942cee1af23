"""How each table would be placed on a sharded store (Citus): the plan docs/scale.md explains.

A test reads the migrated schema back from pg_catalog against this plan, so a key or a
foreign key that a sharded store could not enforce fails the suite, and so does a table
added without a place in the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    DISTRIBUTED = "distributed"  # hash-distributed by `column`
    LOCAL = "local"  # stays on the coordinator (bookkeeping nobody joins against)


@dataclass(frozen=True, slots=True)
class Placement:
    table: str
    kind: Kind
    column: str | None = None  # the distribution column (DISTRIBUTED only)
    group: str | None = None  # colocation group: same group, same shard for equal values


_USER = "user"  # everything keyed by a user id: a user's rows share one shard

PLAN: tuple[Placement, ...] = (
    Placement("users", Kind.DISTRIBUTED, "id", _USER),
    Placement("posts", Kind.DISTRIBUTED, "author_id", _USER),
    Placement("follows", Kind.DISTRIBUTED, "follower_id", _USER),
    Placement("followers", Kind.DISTRIBUTED, "followee_id", _USER),
    Placement("blocks", Kind.DISTRIBUTED, "blocker_id", _USER),
    Placement("mutes", Kind.DISTRIBUTED, "muter_id", _USER),
    Placement("likes", Kind.DISTRIBUTED, "user_id", _USER),
    Placement("outbox", Kind.DISTRIBUTED, "actor_id", _USER),
    Placement("dead_jobs", Kind.DISTRIBUTED, "actor_id", _USER),
    Placement("affinity", Kind.DISTRIBUTED, "user_id", _USER),
    Placement("author_days", Kind.DISTRIBUTED, "author_id", _USER),
    Placement("author_recent", Kind.DISTRIBUTED, "author_id", _USER),
    Placement("impressions", Kind.DISTRIBUTED, "viewer_id", _USER),
    Placement("handles", Kind.DISTRIBUTED, "handle_key", "handle"),
    Placement("schema_migrations", Kind.LOCAL),
)


def placement(table: str) -> Placement | None:
    """The plan for a table, or None if it has none."""
    return next((p for p in PLAN if p.table == table), None)

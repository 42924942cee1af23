"""What the store tells about committed writes, for readers on replicas (homefeed/feed/replicas.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import asyncpg

T = TypeVar("T")


class WriteMarks(Protocol):
    """Told after a user's write commits; `hides`: the write hides posts from other users too."""

    async def wrote(self, user_id: int, *, hides: bool = False) -> None: ...


class ReplicaReads(Protocol):
    """Runs a read on a replica that has replayed what it must show (homefeed/feed/replicas.py)."""

    async def run(
        self,
        read: str,
        viewer: int | None,
        authors: Sequence[int],
        work: Callable[[asyncpg.Pool], Awaitable[T]],
    ) -> T | None:
        """`work` on a replica that has the viewer's and these authors' last writes and the last
        hiding write; None (nothing run, or it failed there): the caller asks the primary."""
        ...

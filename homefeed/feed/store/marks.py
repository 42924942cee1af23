"""What the store tells about committed writes, for readers on replicas (homefeed/feed/replicas.py)."""

from __future__ import annotations

from typing import Protocol


class WriteMarks(Protocol):
    """Told after a user's write commits; `hides`: the write hides posts from other users too."""

    async def wrote(self, user_id: int, *, hides: bool = False) -> None: ...

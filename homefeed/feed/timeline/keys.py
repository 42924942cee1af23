"""Redis key names. Every key of one user shares a hash tag, so it lives in one Redis Cluster slot."""

from __future__ import annotations

from collections.abc import Sequence

# Entries are encoded in encoding.py; re-exported here, where the fan-out benchmark imports it.
from homefeed.feed.timeline.encoding import encode_id as encode_id


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # Fan-out names thousands of timelines per post: one %-format each, prefix escaped once.
        self._timeline_template = prefix.encode().replace(b"%", b"%%") + b":{%d}:tl"
        # A cluster hashes a key's first {tag}: the user id, unless the prefix holds a "{" itself.
        self.tags_are_ids = "{" not in prefix

    def timeline(self, user_id: int) -> str:
        """A user's home timeline: ids of pushed posts."""
        return f"{self.prefix}:{{{user_id}}}:tl"

    def timelines(self, user_ids: Sequence[int]) -> list[bytes]:
        """Many users' timeline keys, as the bulk writer sends them (the same names as `timeline`)."""
        template = self._timeline_template
        return [template % u for u in user_ids]

    def recent(self, author_id: int) -> str:
        """A pulled author's recent posts."""
        return f"{self.prefix}:{{{author_id}}}:recent"

    def follows_version(self, user_id: int) -> str:
        """A counter bumped whenever the user follows or unfollows: readers' cached follows are stale."""
        return f"{self.prefix}:{{{user_id}}}:fv"

    def pulled_of(self, user_id: int) -> str:
        """Which pulled authors the user follows, as last found (see feed/pulled_of.py)."""
        return f"{self.prefix}:{{{user_id}}}:po"

    def rebuild_lock(self, user_id: int) -> str:
        """Single-flight lock for rebuilding a user's timeline."""
        return f"{self.prefix}:{{{user_id}}}:rebuild"

    def recent_lock(self, author_id: int) -> str:
        """Single-flight lock for rebuilding an author's recent list."""
        return f"{self.prefix}:{{{author_id}}}:rebuild-recent"

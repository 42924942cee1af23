"""The feed's rules (docs/design.md) in plain Python: the independent oracle the engine is checked against."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Model:
    """The feed's rules in plain Python, over user indices and post creation indices."""

    authors: list[int] = field(default_factory=list)  # author of each post, by creation index
    deleted: set[int] = field(default_factory=set)
    follows: set[tuple[int, int]] = field(default_factory=set)
    blocks: set[tuple[int, int]] = field(default_factory=set)
    mutes: set[tuple[int, int]] = field(default_factory=set)

    def blocked(self, a: int, b: int) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def relate(self, verb: str, a: int, b: int) -> str | None:
        """Apply a relationship change; returns the error code the engine must answer with."""
        if a == b:
            return "BAD_USER_INPUT"
        if verb == "follow":
            if self.blocked(a, b):
                return "FORBIDDEN"
            self.follows.add((a, b))
        elif verb == "unfollow":
            self.follows.discard((a, b))
        elif verb == "block":
            self.blocks.add((a, b))
            self.follows -= {(a, b), (b, a)}
        elif verb == "unblock":
            self.blocks.discard((a, b))
        elif verb == "mute":
            self.mutes.add((a, b))
        elif verb == "unmute":
            self.mutes.discard((a, b))
        return None

    def delete(self, post: int, by: int) -> str | None:
        if self.authors[post] != by:
            return "FORBIDDEN"
        self.deleted.add(post)
        return None

    def feed(self, viewer: int) -> list[int]:
        """The viewer's whole home feed, newest first."""
        return [
            p
            for p in reversed(range(len(self.authors)))
            if p not in self.deleted
            and (self.authors[p] == viewer or (viewer, self.authors[p]) in self.follows)
            and (viewer, self.authors[p]) not in self.mutes
            and not self.blocked(viewer, self.authors[p])
        ]

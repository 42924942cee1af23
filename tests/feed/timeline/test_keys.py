"""Key names: one hash tag per user, and the bulk names equal to the single ones."""

from __future__ import annotations

import re

from homefeed.feed.timeline.keys import Keys


def test_every_key_of_a_user_shares_one_hash_tag() -> None:
    keys = Keys("p")
    names = [keys.timeline(42), keys.recent(42), keys.rebuild_lock(42), keys.recent_lock(42)]
    assert len(set(names)) == 4
    assert all(name.startswith("p:") for name in names)
    assert {re.search(r"\{([^}]*)\}", name).group(1) for name in names} == {"42"}  # type: ignore[union-attr]
    assert keys.timeline(42) != keys.timeline(43)


def test_bulk_timeline_names_are_the_single_ones_as_bytes() -> None:
    for prefix in ("t_abc", "odd%prefix%d", "100%"):
        keys = Keys(prefix)
        users = [0, 7, 2**53 - 1]
        assert keys.timelines(users) == [keys.timeline(u).encode() for u in users]
    assert Keys("x").timelines([]) == []


def test_prefixes_keep_worlds_apart() -> None:
    assert Keys("a").timeline(1) != Keys("b").timeline(1)
    assert Keys("a").recent(1) != Keys("a").timeline(1)

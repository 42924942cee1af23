from __future__ import annotations

import pytest

from homefeed.feed.authors import Authors
from homefeed.feed.services import Services


async def test_authors_are_read_once_and_leave_out_their_counts(services: Services) -> None:
    ann, bob = [await services.users.create(h, h.title(), "x") for h in ("ann", "bob")]
    authors = Authors(services.pool)
    found = await authors.of([ann.id, bob.id, ann.id])
    assert authors.reads == 1
    assert found[ann.id] == ann._replace(follower_count=None, following_count=None)
    assert found[bob.id].display_name == "Bob" and found[bob.id].created_at == bob.created_at
    assert await authors.of([bob.id]) == {bob.id: found[bob.id]}
    assert authors.reads == 1  # known: no statement


async def test_the_process_forgets_its_oldest_authors_past_its_bound(services: Services) -> None:
    users = [await services.users.create(f"u{i}", "U", "x") for i in range(5)]
    authors = Authors(services.pool, max_size=4)
    await authors.of([u.id for u in users[:3]])
    await authors.of([u.id for u in users[3:]])
    assert len(authors) == 4
    assert authors.reads == 2
    await authors.of([users[4].id])  # the newest are kept
    assert authors.reads == 2
    await authors.of([users[0].id])  # the oldest was forgotten: read again
    assert authors.reads == 3


async def test_an_author_who_does_not_exist_is_an_error(services: Services) -> None:
    ann = await services.users.create("ann", "Ann", "x")
    with pytest.raises(LookupError, match="do not exist"):
        await Authors(services.pool).of([ann.id, ann.id + 1])

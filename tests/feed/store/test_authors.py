from __future__ import annotations

import asyncio

import pytest

from homefeed.feed.services import Services
from homefeed.feed.store.authors import Authors


async def test_authors_are_read_once_and_leave_out_their_counts(services: Services) -> None:
    ann, bob = [await services.users.create(h, h.title(), "x") for h in ("ann", "bob")]
    authors = Authors(services.users, warm=0)
    assert authors.get(ann.id) is None
    found = await authors.load([ann.id, bob.id, ann.id])
    assert authors.reads == 1
    assert found[ann.id] == ann._replace(follower_count=None, following_count=None)
    assert found[bob.id].display_name == "Bob" and found[bob.id].created_at == bob.created_at
    assert authors.get(bob.id) == found[bob.id]  # remembered: the next read looks it up


async def test_the_most_followed_authors_are_read_at_start(services: Services) -> None:
    users = [await services.users.create(f"u{i}", "U", "x") for i in range(4)]
    for follower in users[1:]:
        await services.relations.follow(follower.id, users[0].id)
    await services.relations.follow(users[2].id, users[1].id)
    authors = Authors(services.users, warm=2)
    authors.start()
    authors.start()  # once
    for _ in range(100):
        if len(authors):
            break
        await asyncio.sleep(0.01)
    assert {u.id for u in users if authors.get(u.id)} == {users[0].id, users[1].id}
    assert authors.reads == 0
    await authors.close()


async def test_the_process_forgets_its_oldest_authors_past_its_bound(services: Services) -> None:
    users = [await services.users.create(f"u{i}", "U", "x") for i in range(5)]
    authors = Authors(services.users, max_size=4, warm=0)
    await authors.load([u.id for u in users[:3]])
    await authors.load([u.id for u in users[3:]])
    assert len(authors) == 4
    assert authors.get(users[4].id) is not None  # the newest are kept
    assert authors.get(users[0].id) is None  # the oldest was forgotten


async def _warmed(authors: Authors) -> None:
    authors.start()
    for _ in range(200):
        if len(authors):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the start-up read did not finish")


async def test_past_its_bound_the_process_keeps_the_most_followed_authors(services: Services) -> None:
    users = [await services.users.create(f"u{i}", "U", "x") for i in range(7)]
    stars = users[:2]
    for rank, star in enumerate(stars):
        for follower in users[2 + rank :]:
            await services.relations.follow(follower.id, star.id)
    authors = Authors(services.users, max_size=4, warm=2)
    await _warmed(authors)
    met = users[2:6]
    await authors.load([u.id for u in met[:2]])
    await authors.load([u.id for u in met[2:]])  # past the bound: the oldest met are forgotten
    assert len(authors) <= 4
    assert all(authors.get(s.id) is not None for s in stars)  # the warmed stay, though oldest
    assert authors.get(met[-1].id) is not None
    assert authors.get(met[0].id) is None
    await authors.close()


async def test_warmed_authors_alone_past_the_bound_go_least_followed_first(services: Services) -> None:
    users = [await services.users.create(f"u{i}", "U", "x") for i in range(5)]
    # users[i] has 4 - i followers: the most followed first.
    for rank, author in enumerate(users[:4]):
        for follower in users[rank + 1 :]:
            await services.relations.follow(follower.id, author.id)
    authors = Authors(services.users, max_size=3, warm=3)
    await _warmed(authors)
    assert {u.id for u in users if authors.get(u.id)} == {u.id for u in users[:3]}
    await authors.load([users[4].id])
    assert len(authors) == 3
    assert authors.get(users[4].id) is not None
    assert authors.get(users[2].id) is None  # the least followed warmed one made room
    assert authors.get(users[0].id) is not None and authors.get(users[1].id) is not None
    await authors.close()


async def test_concurrent_reads_missing_authors_share_one_statement(services: Services) -> None:
    ann, bob, eve = [await services.users.create(h, h, "x") for h in ("ann", "bob", "eve")]
    authors = Authors(services.users, warm=0)
    found = await asyncio.gather(authors.load([ann.id, bob.id]), authors.load([bob.id, eve.id]))
    assert [sorted(f) for f in found] == [sorted([ann.id, bob.id]), sorted([bob.id, eve.id])]
    assert authors.reads == 1


async def test_an_author_who_does_not_exist_is_an_error(services: Services) -> None:
    ann = await services.users.create("ann", "Ann", "x")
    with pytest.raises(LookupError, match="do not exist"):
        await Authors(services.users, warm=0).load([ann.id, ann.id + 1])

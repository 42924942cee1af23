"""Likes: idempotent, like counts exact under repetition and concurrency."""

from __future__ import annotations

import asyncio

import pytest

from homefeed.feed.errors import Forbidden, NotFound
from homefeed.feed.services import Services


async def like_count(services: Services, post_id: int) -> int:
    (post,) = await services.posts.by_ids([post_id])
    assert post is not None
    return post.like_count


async def test_like_twice_counts_once(services: Services) -> None:
    author = await services.users.create("author", "A", "x")
    fan = await services.users.create("fan", "F", "x")
    post = await services.posts.create(author.id, "likeable")
    for _ in range(3):
        await services.likes.like(fan.id, post.id)
    assert await like_count(services, post.id) == 1
    assert await services.likes.liked_among(fan.id, [post.id]) == {post.id}
    for _ in range(3):
        await services.likes.unlike(fan.id, post.id)
    assert await like_count(services, post.id) == 0
    assert await services.likes.liked_among(fan.id, [post.id]) == set()


async def test_concurrent_likes_keep_the_count_exact(services: Services) -> None:
    author = await services.users.create("author", "A", "x")
    fans = [await services.users.create(f"fan{i}", "F", "x") for i in range(8)]
    post = await services.posts.create(author.id, "popular")
    await asyncio.gather(*(services.likes.like(f.id, post.id) for f in fans for _ in range(4)))
    assert await like_count(services, post.id) == len(fans)
    await asyncio.gather(
        *(services.likes.unlike(f.id, post.id) for f in fans[:5] for _ in range(3)),
        *(services.likes.like(f.id, post.id) for f in fans[5:] for _ in range(3)),
    )
    assert await like_count(services, post.id) == 3
    assert await services.pool.fetchval("SELECT count(*) FROM likes") == 3


async def test_own_post_can_be_liked(services: Services) -> None:
    author = await services.users.create("author", "A", "x")
    post = await services.posts.create(author.id, "me")
    await services.likes.like(author.id, post.id)
    assert await like_count(services, post.id) == 1


async def test_missing_or_deleted_post_is_not_found(services: Services) -> None:
    author = await services.users.create("author", "A", "x")
    fan = await services.users.create("fan", "F", "x")
    post = await services.posts.create(author.id, "soon gone")
    await services.posts.delete(author.id, post.id)
    for pid in (post.id, post.id + 10_000_000):
        with pytest.raises(NotFound):
            await services.likes.like(fan.id, pid)
        with pytest.raises(NotFound):
            await services.likes.unlike(fan.id, pid)
    assert await services.pool.fetchval("SELECT count(*) FROM likes") == 0


@pytest.mark.parametrize("author_blocks", [True, False])
async def test_like_across_a_block_is_forbidden(services: Services, author_blocks: bool) -> None:
    author = await services.users.create("author", "A", "x")
    fan = await services.users.create("fan", "F", "x")
    post = await services.posts.create(author.id, "hidden")
    if author_blocks:
        await services.relations.block(author.id, fan.id)
    else:
        await services.relations.block(fan.id, author.id)
    with pytest.raises(Forbidden):
        await services.likes.like(fan.id, post.id)
    assert await like_count(services, post.id) == 0

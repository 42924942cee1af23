"""The pull feed against an oracle: random histories, every user's feed, random page sizes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from homefeed.feed.errors import Forbidden
from homefeed.feed.services import Services
from homefeed.feed.store.pull import pull_ids
from tests.oracle import Model

MAX_USERS = 5
VERBS = ("follow", "unfollow", "block", "unblock", "mute", "unmute")

users = st.integers(min_value=0, max_value=MAX_USERS - 1)
pairs = st.tuples(users, users).filter(lambda p: p[0] != p[1])
steps = st.one_of(
    st.tuples(st.just("post"), users),
    st.tuples(st.just("post"), users),
    st.tuples(st.just("delete"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.sampled_from(VERBS), pairs),
)


async def reset(services: Services) -> None:
    await services.pool.execute("TRUNCATE users, posts, follows, followers, blocks, mutes, likes, outbox")
    # A post id's low bits hold this sequence modulo 64 (then the author's shard): ids sort by
    # time only to the millisecond, and two posts of one millisecond straddling a wrap sort the
    # other way. Restarted, a history (5 users, at most 40 posts) never wraps, so ids follow
    # creation order, as the oracle assumes.
    await services.pool.execute("ALTER SEQUENCE id_sequence RESTART")


@settings(max_examples=40)
@given(
    history=st.lists(steps, max_size=40),
    page_sizes=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=5),
)
async def test_pull_feed_matches_oracle(
    services: Services, history: list[tuple[str, object]], page_sizes: list[int]
) -> None:
    await reset(services)
    ids = [(await services.users.create(f"u{i}", f"U{i}", "x")).id for i in range(MAX_USERS)]
    oracle = Model()
    post_ids: list[int] = []  # database id of each post, by creation index
    for verb, arg in history:
        if verb == "post":
            assert isinstance(arg, int)
            post_ids.append((await services.posts.create(ids[arg], f"post by u{arg}")).id)
            oracle.authors.append(arg)
        elif verb == "delete":
            assert isinstance(arg, int)
            if post_ids:
                index = arg % len(post_ids)
                author = oracle.authors[index]
                await services.posts.delete(ids[author], post_ids[index])
                assert oracle.delete(index, author) is None
        else:
            assert isinstance(arg, tuple)
            a, b = arg
            try:
                await getattr(services.relations, verb)(ids[a], ids[b])
            except Forbidden:
                assert verb == "follow" and oracle.blocked(a, b)
                continue
            assert not (verb == "follow" and oracle.blocked(a, b)), "follow across a block succeeded"
            oracle.relate(verb, a, b)

    assert post_ids == sorted(post_ids), "ids follow creation order"
    for viewer in range(MAX_USERS):
        got: list[int] = []
        before: int | None = None
        for n in range(100):
            size = page_sizes[n % len(page_sizes)]
            fetched = await pull_ids(services.pool, ids[viewer], before, size + 1)
            page, has_next = fetched[:size], len(fetched) > size
            got += page
            if not has_next:
                break
            before = page[-1]
        assert got == [post_ids[p] for p in oracle.feed(viewer)], f"feed of u{viewer}"

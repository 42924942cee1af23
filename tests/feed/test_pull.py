"""The pull feed against an oracle: random histories, every user's feed, random page sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from homefeed.feed.errors import Forbidden
from homefeed.feed.pull import pull_ids
from homefeed.feed.services import Services

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


@dataclass
class Oracle:
    """The rules of DESIGN.md, in plain Python."""

    posts: list[tuple[int, int]] = field(default_factory=list)  # (post id, author index)
    deleted: set[int] = field(default_factory=set)
    follows: set[tuple[int, int]] = field(default_factory=set)
    blocks: set[tuple[int, int]] = field(default_factory=set)
    mutes: set[tuple[int, int]] = field(default_factory=set)

    def blocked(self, a: int, b: int) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def relate(self, verb: str, a: int, b: int) -> None:
        if verb == "follow":
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

    def feed(self, viewer: int) -> list[int]:
        return sorted(
            (
                pid
                for pid, author in self.posts
                if pid not in self.deleted
                and (author == viewer or (viewer, author) in self.follows)
                and (viewer, author) not in self.mutes
                and not self.blocked(viewer, author)
            ),
            reverse=True,
        )


async def reset(services: Services) -> None:
    await services.pool.execute("TRUNCATE users, posts, follows, followers, blocks, mutes, likes, outbox")


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
    oracle = Oracle()
    for verb, arg in history:
        if verb == "post":
            assert isinstance(arg, int)
            post = await services.posts.create(ids[arg], f"post by u{arg}")
            oracle.posts.append((post.id, arg))
        elif verb == "delete":
            assert isinstance(arg, int)
            if oracle.posts:
                pid, author = oracle.posts[arg % len(oracle.posts)]
                await services.posts.delete(ids[author], pid)
                oracle.deleted.add(pid)
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

    assert [p for p, _ in oracle.posts] == sorted(p for p, _ in oracle.posts), "ids follow creation order"
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
        assert got == oracle.feed(viewer), f"feed of u{viewer}"

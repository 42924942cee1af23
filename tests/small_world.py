"""A small world seeded through the API, for tests that throw many queries at real data: four users,
follows, posts, likes, a block, a mute and a deleted post, so every kind of row and rule is present."""

from __future__ import annotations

from dataclasses import dataclass

from tests.api import Account, Api

HANDLES = ("alice", "bob", "carol", "dave")
# (follower, followee) by index into HANDLES.
FOLLOWS = ((0, 1), (0, 2), (1, 0), (2, 3), (3, 0), (3, 2))


@dataclass(frozen=True)
class World:
    accounts: list[Account]
    posts: list[str]  # live post ids
    deleted: str  # a deleted post's id
    cursors: list[str]  # valid `after` values: alice's home feed and her posts, two in

    @property
    def ids(self) -> list[str]:
        """Every global id in the world: users, live posts and the deleted post."""
        return [*(a.id for a in self.accounts), *self.posts, self.deleted]

    @property
    def handles(self) -> list[str]:
        return [a.handle for a in self.accounts]


async def seed(api: Api) -> World:
    """Sign up, follow, post, like, block and mute through the API; returns what was made."""
    accounts = [await api.sign_up(handle) for handle in HANDLES]
    alice, bob, carol, dave = accounts
    for follower, followee in FOLLOWS:
        (await api.act(accounts[follower], "follow", accounts[followee])).ok()
    posts = [await api.post(who, f"{who.handle} says {n}") for n in range(3) for who in accounts]
    deleted = await api.post(bob, "soon gone")
    (await api.gql("mutation($p: ID!) { deletePost(id: $p) }", {"p": deleted}, token=bob.token)).ok()
    like = "mutation($p: ID!) { likePost(id: $p) { id } }"
    for who, post in ((alice, posts[1]), (bob, posts[0]), (carol, posts[1]), (dave, posts[4])):
        (await api.gql(like, {"p": post}, token=who.token)).ok()
    # Blocks hide both ways: dave and bob each see none of the other's posts anywhere.
    (await api.act(dave, "block", bob)).ok()
    (await api.act(alice, "mute", carol)).ok()
    feed = (await api.feed(alice, first=2)).ok()["homeFeed"]["pageInfo"]["endCursor"]
    own = (await api.gql('{ user(handle: "alice") { posts(first: 2) { pageInfo { endCursor } } } }')).ok()[
        "user"
    ]["posts"]["pageInfo"]["endCursor"]
    return World(accounts=accounts, posts=posts, deleted=deleted, cursors=[feed, own])

"""The GraphQL contract (docs/api.md), end to end over HTTP."""

from __future__ import annotations

import base64
from typing import Any

from graphql import GraphQLInterfaceType, GraphQLObjectType, Undefined, build_schema, is_non_null_type

from homefeed.schema import schema
from tests.api import Account, Api

SIGN_UP = """mutation($h: String!, $p: String!, $d: String) {
  signUp(handle: $h, password: $p, displayName: $d) { token user { id handle displayName } } }"""
LOG_IN = "mutation($h: String!, $p: String!) { logIn(handle: $h, password: $p) { token user { id handle } } }"
VIEWER = "{ viewer { id handle followerCount followingCount } }"
USER_POSTS = """query($h: String!, $f: Int, $a: String) { user(handle: $h) {
  posts(first: $f, after: $a) {
    edges { cursor node { id text } } nodes { id }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }"""


def feed_ids(conn: dict[str, Any]) -> list[str]:
    return [e["node"]["id"] for e in conn["edges"]]


async def test_sign_up_log_in_and_viewer(api: Api) -> None:
    anon = await api.gql(VIEWER)
    assert anon.ok() == {"viewer": None}

    signed = (await api.gql(SIGN_UP, {"h": "Alice_1", "p": "password123", "d": " Alice "})).ok()["signUp"]
    assert signed["user"]["handle"] == "Alice_1"
    assert signed["user"]["displayName"] == "Alice"
    me = (await api.gql(VIEWER, token=signed["token"])).ok()["viewer"]
    assert me == {"id": signed["user"]["id"], "handle": "Alice_1", "followerCount": 0, "followingCount": 0}

    # Handles ignore letter case, at log-in and at sign-up.
    logged = (await api.gql(LOG_IN, {"h": "aLiCe_1", "p": "password123"})).ok()["logIn"]
    assert logged["user"]["id"] == signed["user"]["id"]
    assert (await api.gql(VIEWER, token=logged["token"])).ok()["viewer"]["id"] == signed["user"]["id"]
    taken = await api.gql(SIGN_UP, {"h": "ALICE_1", "p": "password123"})
    assert taken.codes == ["BAD_USER_INPUT"] and taken.data is None

    wrong = await api.gql(LOG_IN, {"h": "alice_1", "p": "password124"})
    assert wrong.codes == ["UNAUTHENTICATED"]
    nobody = await api.gql(LOG_IN, {"h": "nobody", "p": "password123"})
    assert nobody.codes == ["UNAUTHENTICATED"]
    assert wrong.errors[0]["message"] == nobody.errors[0]["message"], "must not reveal which handles exist"


async def test_display_name_defaults_to_handle(api: Api) -> None:
    data = (await api.gql(SIGN_UP, {"h": "bob", "p": "password123"})).ok()
    assert data["signUp"]["user"]["displayName"] == "bob"


async def test_node_user_and_post_lookups(api: Api) -> None:
    alice = await api.sign_up("alice")
    post_id = await api.post(alice, "  hello world  ")
    q = """query($u: ID!, $p: ID!) {
      u: node(id: $u) { __typename id ... on User { handle } }
      p: node(id: $p) { __typename id ... on Post { text author { id } } }
      post(id: $p) { id text createdAt likeCount viewerHasLiked author { handle } }
      byHandle: user(handle: "ALICE") { id handle createdAt viewerFollows }
      missing: user(handle: "nobody") { id }
      invalid: user(handle: "no such handle!") { id } }"""
    data = (await api.gql(q, {"u": alice.id, "p": post_id})).ok()
    assert data["u"] == {"__typename": "User", "id": alice.id, "handle": "alice"}
    assert data["p"] == {
        "__typename": "Post",
        "id": post_id,
        "text": "hello world",
        "author": {"id": alice.id},
    }
    assert data["post"]["text"] == "hello world"
    assert data["post"]["author"] == {"handle": "alice"}
    assert (data["post"]["likeCount"], data["post"]["viewerHasLiked"]) == (0, False)
    assert data["byHandle"]["id"] == alice.id and data["byHandle"]["viewerFollows"] is False
    assert data["missing"] is None and data["invalid"] is None

    # Ids of objects that do not exist (well formed) answer null.
    gone = await api.post(alice, "gone soon")
    (await api.gql("mutation($p: ID!) { deletePost(id: $p) }", {"p": gone}, token=alice.token)).ok()
    data = (await api.gql("query($p: ID!) { node(id: $p) { id } post(id: $p) { id } }", {"p": gone})).ok()
    assert data == {"node": None, "post": None}


async def test_user_posts_pages(api: Api) -> None:
    alice = await api.sign_up("alice")
    bob = await api.sign_up("bob")
    mine = [await api.post(alice, f"post {i}") for i in range(5)]
    await api.post(bob, "not alice's")
    seen: list[str] = []
    after = None
    pages = []
    while True:
        conn = (await api.gql(USER_POSTS, {"h": "alice", "f": 2, "a": after})).ok()["user"]["posts"]
        pages.append(len(conn["edges"]))
        seen += feed_ids(conn)
        assert [n["id"] for n in conn["nodes"]] == feed_ids(conn)
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
        after = conn["pageInfo"]["endCursor"]
    assert seen == mine[::-1]
    assert pages == [2, 2, 1]


async def test_home_feed_pages_exactly(api: Api) -> None:
    alice = await api.sign_up("alice")
    bob = await api.sign_up("bob")
    (await api.act(alice, "follow", bob)).ok()
    posted = []
    for i in range(7):
        posted.append(await api.post(alice if i % 2 else bob, f"post {i}"))
    newest_first = posted[::-1]

    first = (await api.feed(alice, 3)).ok()["homeFeed"]
    assert feed_ids(first) == newest_first[:3]
    assert [n["id"] for n in first["nodes"]] == feed_ids(first)
    info = first["pageInfo"]
    assert info == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "startCursor": first["edges"][0]["cursor"],
        "endCursor": first["edges"][-1]["cursor"],
    }
    second = (await api.feed(alice, 3, info["endCursor"])).ok()["homeFeed"]
    assert feed_ids(second) == newest_first[3:6]
    assert second["pageInfo"]["hasNextPage"] is True and second["pageInfo"]["hasPreviousPage"] is True
    third = (await api.feed(alice, 3, second["pageInfo"]["endCursor"])).ok()["homeFeed"]
    assert feed_ids(third) == newest_first[6:]
    assert third["pageInfo"]["hasNextPage"] is False
    # Exactly a page's worth left: no phantom next page.
    exact = (await api.feed(alice, 4, info["endCursor"])).ok()["homeFeed"]
    assert feed_ids(exact) == newest_first[3:] and exact["pageInfo"]["hasNextPage"] is False

    empty = (await api.feed(bob, 20)).ok()["homeFeed"]
    assert feed_ids(empty) == [p for i, p in enumerate(newest_first) if (6 - i) % 2 == 0]
    nobody = await api.sign_up("carol")
    blank = (await api.feed(nobody)).ok()["homeFeed"]
    assert blank["edges"] == [] and blank["nodes"] == []
    assert blank["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }


async def test_home_feed_default_page_is_20(api: Api) -> None:
    alice = await api.sign_up("alice")
    posted = [await api.post(alice, f"p{i}") for i in range(21)]
    conn = (await api.gql("{ homeFeed { nodes { id } pageInfo { hasNextPage } } }", token=alice.token)).ok()
    assert [n["id"] for n in conn["homeFeed"]["nodes"]] == posted[::-1][:20]
    assert conn["homeFeed"]["pageInfo"]["hasNextPage"] is True


async def test_follow_and_unfollow_change_the_feed_and_counts(api: Api) -> None:
    alice, bob = await api.sign_up("alice"), await api.sign_up("bob")
    hello = await api.post(bob, "hello from bob")
    assert await api.whole_feed(alice) == []

    followed = (await api.act(alice, "follow", bob)).ok()["follow"]
    assert followed == {"id": bob.id, "viewerFollows": True, "followerCount": 1}
    again = (await api.act(alice, "follow", bob)).ok()["follow"]
    assert again == followed, "follow is idempotent"
    assert await api.whole_feed(alice) == [hello]
    me = (await api.gql(VIEWER, token=alice.token)).ok()["viewer"]
    assert me["followingCount"] == 1

    unfollowed = (await api.act(alice, "unfollow", bob)).ok()["unfollow"]
    assert unfollowed == {"id": bob.id, "viewerFollows": False, "followerCount": 0}
    assert (await api.act(alice, "unfollow", bob)).ok()["unfollow"] == unfollowed
    assert await api.whole_feed(alice) == []

    self_follow = await api.act(alice, "follow", alice)
    assert self_follow.codes == ["BAD_USER_INPUT"]


async def test_block_hides_both_ways_and_unblock_restores_nothing(api: Api) -> None:
    alice, bob = await api.sign_up("alice"), await api.sign_up("bob")
    (await api.act(alice, "follow", bob)).ok()
    (await api.act(bob, "follow", alice)).ok()
    a_post = await api.post(alice, "from alice")
    b_post = await api.post(bob, "from bob")
    assert await api.whole_feed(alice) == [b_post, a_post]

    blocked = (await api.act(alice, "block", bob)).ok()["block"]
    assert blocked == {"id": bob.id, "viewerFollows": False, "followerCount": 0}
    assert (await api.act(alice, "block", bob)).ok()["block"] == blocked
    assert await api.whole_feed(alice) == [a_post]
    assert await api.whole_feed(bob) == [b_post]
    for who, whom in ((alice, bob), (bob, alice)):
        assert (await api.act(who, "follow", whom)).codes == ["FORBIDDEN"]

    (await api.act(alice, "unblock", bob)).ok()
    assert (await api.act(alice, "unblock", bob)).ok()["unblock"]["viewerFollows"] is False
    assert await api.whole_feed(alice) == [a_post], "unblock restores no follow"
    (await api.act(bob, "follow", alice)).ok()
    assert await api.whole_feed(bob) == [b_post, a_post]


async def test_mute_hides_only_from_the_muter(api: Api) -> None:
    alice, bob, carol = await api.sign_up("alice"), await api.sign_up("bob"), await api.sign_up("carol")
    (await api.act(alice, "follow", bob)).ok()
    (await api.act(carol, "follow", bob)).ok()
    b_post = await api.post(bob, "from bob")

    muted = (await api.act(alice, "mute", bob)).ok()["mute"]
    assert muted == {"id": bob.id, "viewerFollows": True, "followerCount": 2}, "mute keeps the follow"
    (await api.act(alice, "mute", bob)).ok()
    assert await api.whole_feed(alice) == []
    assert await api.whole_feed(carol) == [b_post]
    (await api.act(alice, "unmute", bob)).ok()
    (await api.act(alice, "unmute", bob)).ok()
    assert await api.whole_feed(alice) == [b_post]


async def test_like_and_unlike(api: Api) -> None:
    alice, bob = await api.sign_up("alice"), await api.sign_up("bob")
    (await api.act(alice, "follow", bob)).ok()
    post_id = await api.post(bob, "like me")
    like = "mutation($p: ID!) { likePost(id: $p) { id likeCount viewerHasLiked } }"
    unlike = "mutation($p: ID!) { unlikePost(id: $p) { id likeCount viewerHasLiked } }"
    for _ in range(2):
        liked = (await api.gql(like, {"p": post_id}, token=alice.token)).ok()["likePost"]
        assert liked == {"id": post_id, "likeCount": 1, "viewerHasLiked": True}
    node = (await api.feed(alice)).ok()["homeFeed"]["edges"][0]["node"]
    assert (node["likeCount"], node["viewerHasLiked"]) == (1, True)
    node = (await api.feed(bob)).ok()["homeFeed"]["edges"][0]["node"]
    assert (node["likeCount"], node["viewerHasLiked"]) == (1, False)
    for _ in range(2):
        unliked = (await api.gql(unlike, {"p": post_id}, token=alice.token)).ok()["unlikePost"]
        assert unliked == {"id": post_id, "likeCount": 0, "viewerHasLiked": False}


async def test_delete_post(api: Api) -> None:
    alice, bob = await api.sign_up("alice"), await api.sign_up("bob")
    (await api.act(bob, "follow", alice)).ok()
    keep = await api.post(alice, "keep")
    drop = await api.post(alice, "drop")
    delete = "mutation($p: ID!) { deletePost(id: $p) }"

    other = await api.gql(delete, {"p": drop}, token=bob.token)
    assert other.codes == ["FORBIDDEN"]
    assert await api.whole_feed(bob) == [drop, keep]

    assert (await api.gql(delete, {"p": drop}, token=alice.token)).ok() == {"deletePost": True}
    assert (await api.gql(delete, {"p": drop}, token=alice.token)).ok() == {"deletePost": True}
    assert await api.whole_feed(alice) == [keep]
    assert await api.whole_feed(bob) == [keep]
    posts = (await api.gql(USER_POSTS, {"h": "alice"})).ok()["user"]["posts"]
    assert feed_ids(posts) == [keep]

    missing = await api.gql(delete, {"p": _missing_post_id(keep)}, token=alice.token)
    assert missing.codes == ["NOT_FOUND"]


async def test_anonymous_cannot_mutate_or_read_a_feed(api: Api) -> None:
    bob = await api.sign_up("bob")
    post_id = await api.post(bob, "hi")
    for query, variables in [
        ("{ homeFeed { nodes { id } } }", {}),
        ('mutation { createPost(text: "x") { id } }', {}),
        ("mutation($u: ID!) { follow(userId: $u) { id } }", {"u": bob.id}),
        ("mutation($p: ID!) { likePost(id: $p) { id } }", {"p": post_id}),
        ("mutation($p: ID!) { deletePost(id: $p) }", {"p": post_id}),
    ]:
        result = await api.gql(query, variables)
        assert result.codes == ["UNAUTHENTICATED"], query
    assert await api.whole_feed(bob) == [post_id]


async def test_feed_reflects_actions_of_many_users(api: Api) -> None:
    users: dict[str, Account] = {h: await api.sign_up(h) for h in ("ann", "ben", "cat", "dan")}
    ann, ben, cat, dan = users.values()
    for who in (ben, cat, dan):
        (await api.act(ann, "follow", who)).ok()
    posts = {h: [await api.post(u, f"{h} {i}") for i in range(3)] for h, u in users.items()}
    (await api.act(ann, "mute", cat)).ok()
    (await api.act(dan, "block", ann)).ok()
    await api.gql("mutation($p: ID!) { deletePost(id: $p) }", {"p": posts["ben"][1]}, token=ben.token)
    expected = sorted(posts["ann"] + [posts["ben"][0], posts["ben"][2]], key=_numeric, reverse=True)
    assert await api.whole_feed(ann, first=2) == expected


def _numeric(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().partition(":")[2])


def _missing_post_id(existing: str) -> str:
    return base64.b64encode(f"Post:{_numeric(existing) + 999_999}".encode()).decode()


# The GraphQL contract of docs/api.md, verbatim. The schema may add fields, never rename or retype these.
CONTRACT = """
scalar DateTime
interface Node { id: ID! }
type User implements Node {
  id: ID!  handle: String!  displayName: String!  createdAt: DateTime!
  followerCount: Int!  followingCount: Int!  viewerFollows: Boolean!
  posts(first: Int, after: String): PostConnection!
}
type Post implements Node {
  id: ID!  author: User!  text: String!  createdAt: DateTime!
  likeCount: Int!  viewerHasLiked: Boolean!
}
type PostEdge { cursor: String!  node: Post! }
type PageInfo { hasNextPage: Boolean!  hasPreviousPage: Boolean!  startCursor: String  endCursor: String }
type PostConnection { edges: [PostEdge!]!  nodes: [Post!]!  pageInfo: PageInfo! }
type AuthPayload { token: String!  user: User! }
type Query {
  node(id: ID!): Node
  viewer: User
  user(handle: String!): User
  post(id: ID!): Post
  homeFeed(first: Int = 20, after: String): PostConnection!
}
type Mutation {
  signUp(handle: String!, password: String!, displayName: String): AuthPayload!
  logIn(handle: String!, password: String!): AuthPayload!
  createPost(text: String!): Post!
  deletePost(id: ID!): Boolean!
  follow(userId: ID!): User!      unfollow(userId: ID!): User!
  block(userId: ID!): User!       unblock(userId: ID!): User!
  mute(userId: ID!): User!        unmute(userId: ID!): User!
  likePost(id: ID!): Post!        unlikePost(id: ID!): Post!
}
"""


def test_schema_honours_the_contract() -> None:
    contract = build_schema(CONTRACT)
    ours = schema._schema
    for name, wanted in contract.type_map.items():
        if name.startswith("__") or not isinstance(wanted, GraphQLObjectType | GraphQLInterfaceType):
            continue
        have = ours.get_type(name)
        assert isinstance(have, type(wanted)), name
        assert {i.name for i in wanted.interfaces} <= {i.name for i in have.interfaces}, name
        for field_name, field in wanted.fields.items():
            assert field_name in have.fields, f"{name}.{field_name} is missing"
            got = have.fields[field_name]
            assert str(got.type) == str(field.type), f"{name}.{field_name}: {got.type} != {field.type}"
            for arg_name, arg in field.args.items():
                assert arg_name in got.args, f"{name}.{field_name}({arg_name}) is missing"
                assert str(got.args[arg_name].type) == str(arg.type), f"{name}.{field_name}({arg_name})"
                if arg.default_value is not Undefined:
                    assert got.args[arg_name].default_value == arg.default_value, f"{name}.{field_name}"
            # Added arguments must be optional, or clients written against the contract break.
            for extra in set(got.args) - set(field.args):
                assert not is_non_null_type(got.args[extra].type), f"{name}.{field_name}({extra})"


async def test_null_first_means_the_default_page(api: Api) -> None:
    alice = await api.sign_up("alice")
    posted = [await api.post(alice, f"p{i}") for i in range(21)]
    feed = await api.gql("{ homeFeed(first: null) { nodes { id } } }", token=alice.token)
    assert [n["id"] for n in feed.ok()["homeFeed"]["nodes"]] == posted[::-1][:20]
    posts = await api.gql('query($f: Int) { user(handle: "alice") { posts(first: $f) { nodes { id } } } }')
    assert len(posts.ok()["user"]["posts"]["nodes"]) == 20

"""Malformed and hostile requests: each gets its error code, changes nothing, and the server stays up."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest

from homefeed.feed.services import Services
from homefeed.schema import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from tests.api import Account, Api, Result

FEED = "query($f: Int, $a: String) { homeFeed(first: $f, after: $a) { nodes { id } } }"
POSTS = """query($h: String!, $f: Int, $a: String) {
  user(handle: $h) { posts(first: $f, after: $a) { nodes { id } } } }"""
CREATE = "mutation($t: String!) { createPost(text: $t) { id text } }"


def gid(type_name: str, pk: object) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def assert_codes(result: Result, code: str) -> None:
    assert result.errors, f"expected {code}, got data {result.data}"
    assert result.codes == [code] * len(result.errors), result.errors
    for error in result.errors:
        assert error["message"], "every error explains itself"


@pytest.fixture
async def alice(api: Api) -> Account:
    return await api.sign_up("alice")


async def raw(api: Api, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    """POST a body as given (not necessarily a GraphQL request); the status and the JSON answer."""
    if isinstance(body, bytes | str):
        response = await api.http.post(
            "/graphql", content=body, headers={"content-type": "application/json", **headers}
        )
    else:
        response = await api.http.post("/graphql", json=body, headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize("first", [0, -1, 101, 2**31 - 1])
async def test_first_out_of_range(api: Api, alice: Account, first: int) -> None:
    assert_codes(await api.gql(FEED, {"f": first}, token=alice.token), "BAD_USER_INPUT")
    assert_codes(await api.gql(POSTS, {"h": "alice", "f": first}), "BAD_USER_INPUT")


async def test_first_bounds_are_inclusive(api: Api, alice: Account) -> None:
    for first in (1, 100):
        (await api.gql(FEED, {"f": first}, token=alice.token)).ok()
        (await api.gql(POSTS, {"h": "alice", "f": first})).ok()


@pytest.mark.parametrize("cursor", ["", "garbage", "!!!", "a" * 300, "eyJpZCI6IDF9", gid("Post", 1)])
async def test_garbage_cursors(api: Api, alice: Account, cursor: str) -> None:
    assert_codes(await api.gql(FEED, {"a": cursor}, token=alice.token), "BAD_USER_INPUT")
    assert_codes(await api.gql(POSTS, {"h": "alice", "a": cursor}), "BAD_USER_INPUT")


async def test_foreign_cursors(api: Api, alice: Account) -> None:
    bob = await api.sign_up("bob")
    for who in (alice, bob):
        (await api.act(who, "follow", alice if who is bob else bob)).ok()
        for i in range(3):
            await api.post(who, f"{who.handle} {i}")

    def end(result: Result, *path: str) -> str:
        node = result.ok()
        for key in path:
            node = node[key]
        cursor: str = node["pageInfo"]["endCursor"]
        return cursor

    paged = "{ pageInfo { endCursor } }"
    feed_q = f"{{ homeFeed(first: 1) {paged} }}"
    alice_feed = end(await api.gql(feed_q, token=alice.token), "homeFeed")
    bob_posts = end(
        await api.gql(f'{{ user(handle: "bob") {{ posts(first: 1) {paged} }} }}'), "user", "posts"
    )
    # A user.posts cursor handed to homeFeed, and the other way round.
    assert_codes(await api.gql(FEED, {"a": bob_posts}, token=bob.token), "BAD_USER_INPUT")
    assert_codes(await api.gql(POSTS, {"h": "alice", "a": alice_feed}), "BAD_USER_INPUT")
    # Another viewer's feed cursor, another author's posts cursor.
    assert_codes(await api.gql(FEED, {"a": alice_feed}, token=bob.token), "BAD_USER_INPUT")
    assert_codes(await api.gql(POSTS, {"h": "alice", "a": bob_posts}), "BAD_USER_INPUT")
    # Each still works where it belongs.
    (await api.gql(FEED, {"a": alice_feed}, token=alice.token)).ok()
    (await api.gql(POSTS, {"h": "bob", "a": bob_posts})).ok()


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        "not-an-id",
        "%%%",
        gid("User", "abc"),
        gid("User", -5),
        gid("User", 0),
        gid("User", "007"),
        gid("User", 2**63),
        gid("", 5),
        "A" * 500,
        base64.b64encode(b"\xff\xfe:1").decode(),
    ],
)
async def test_malformed_ids(api: Api, alice: Account, bad_id: str) -> None:
    for query in (
        "mutation($i: ID!) { follow(userId: $i) { id } }",
        "mutation($i: ID!) { likePost(id: $i) { id } }",
        "mutation($i: ID!) { deletePost(id: $i) }",
        "query($i: ID!) { node(id: $i) { id } }",
        "query($i: ID!) { post(id: $i) { id } }",
    ):
        assert_codes(await api.gql(query, {"i": bad_id}, token=alice.token), "BAD_USER_INPUT")


async def test_ids_of_the_wrong_type(api: Api, alice: Account) -> None:
    bob = await api.sign_up("bob")
    post_id = await api.post(bob, "a post")
    for verb in ("follow", "unfollow", "block", "unblock", "mute", "unmute"):
        result = await api.gql(
            f"mutation($i: ID!) {{ {verb}(userId: $i) {{ id }} }}", {"i": post_id}, token=alice.token
        )
        assert_codes(result, "BAD_USER_INPUT")
    for mutation in ("likePost(id: $i) { id }", "unlikePost(id: $i) { id }", "deletePost(id: $i)"):
        assert_codes(
            await api.gql(f"mutation($i: ID!) {{ {mutation} }}", {"i": bob.id}, token=alice.token),
            "BAD_USER_INPUT",
        )
    assert_codes(await api.gql("query($i: ID!) { post(id: $i) { id } }", {"i": bob.id}), "BAD_USER_INPUT")
    # node() accepts any type; one it does not know is simply absent.
    assert (await api.gql("query($i: ID!) { node(id: $i) { id } }", {"i": gid("Widget", 5)})).ok() == {
        "node": None
    }


async def test_missing_targets_are_not_found(api: Api, alice: Account) -> None:
    for verb in ("follow", "unfollow", "block", "unblock", "mute", "unmute"):
        result = await api.gql(
            f"mutation($i: ID!) {{ {verb}(userId: $i) {{ id }} }}",
            {"i": gid("User", 12345)},
            token=alice.token,
        )
        assert_codes(result, "NOT_FOUND")
    for mutation in ("likePost(id: $i) { id }", "unlikePost(id: $i) { id }", "deletePost(id: $i)"):
        result = await api.gql(
            f"mutation($i: ID!) {{ {mutation} }}", {"i": gid("Post", 12345)}, token=alice.token
        )
        assert_codes(result, "NOT_FOUND")


@pytest.mark.parametrize("verb", ["follow", "block", "mute"])
async def test_self_relations_are_bad_input(api: Api, alice: Account, verb: str) -> None:
    assert_codes(await api.act(alice, verb, alice), "BAD_USER_INPUT")


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "x" * 281, " " + "é" * 281])
async def test_bad_post_text_is_rejected_and_changes_nothing(api: Api, alice: Account, text: str) -> None:
    assert_codes(await api.gql(CREATE, {"t": text}, token=alice.token), "BAD_USER_INPUT")
    assert await api.whole_feed(alice) == []


async def test_post_length_is_counted_after_trimming(api: Api, alice: Account) -> None:
    data = (await api.gql(CREATE, {"t": "  " + "é" * 280 + "\n"}, token=alice.token)).ok()
    assert data["createPost"]["text"] == "é" * 280


@pytest.mark.parametrize(
    ("handle", "password"),
    [
        ("", "password123"),
        ("has space", "password123"),
        ("x" * 31, "password123"),
        ("ok", "short"),
        ("ok", "p" * 257),
    ],
)
async def test_bad_sign_ups(api: Api, handle: str, password: str) -> None:
    result = await api.gql(
        "mutation($h: String!, $p: String!) { signUp(handle: $h, password: $p) { token } }",
        {"h": handle, "p": password},
    )
    assert_codes(result, "BAD_USER_INPUT")


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ viewer { id ", {}),
        ("query {", {}),
        ("", {}),
        ("{ nope }", {}),
        ("{ viewer { password } }", {}),
        ("{ homeFeed(last: 3) { nodes { id } } }", {}),
        ("mutation { createPost { id } }", {}),
        ("query($f: Int) { homeFeed(first: $f) { nodes { id } } }", {"f": "ten"}),
        ("query($f: Int) { homeFeed(first: $f) { nodes { id } } }", {"f": 2**40}),
        ("query($i: ID!) { node(id: $i) { id } }", {}),
        ("query($i: ID!) { node(id: $i) { id } }", {"i": {"nested": 1}}),
        ("subscription { nothing }", {}),
    ],
)
async def test_malformed_documents(api: Api, alice: Account, query: str, variables: dict[str, Any]) -> None:
    result = await api.gql(query, variables, token=alice.token)
    assert result.data is None
    assert_codes(result, "BAD_USER_INPUT")


def nested(depth: int) -> str:
    """A query `depth` levels deep: viewer → posts → nodes → author → posts → …"""
    inner = "id"
    for level in range(depth):
        inner = f"posts {{ nodes {{ {inner} }} }}" if level % 2 == 0 else f"author {{ {inner} }}"
    return f'{{ user(handle: "alice") {{ {inner} }} }}'


async def test_query_limits(api: Api, alice: Account) -> None:
    (await api.gql(nested(3))).ok()
    assert_codes(await api.gql(nested(MAX_DEPTH + 2)), "BAD_USER_INPUT")

    aliases = " ".join(f"a{i}: viewer {{ id }}" for i in range(MAX_ALIASES + 1))
    assert_codes(await api.gql(f"{{ {aliases} }}", token=alice.token), "BAD_USER_INPUT")
    few = " ".join(f"a{i}: viewer {{ id }}" for i in range(5))
    (await api.gql(f"{{ {few} }}", token=alice.token)).ok()

    tokens = "{ viewer { " + "id " * (MAX_TOKENS + 1) + "} }"
    assert_codes(await api.gql(tokens, token=alice.token), "BAD_USER_INPUT")


async def test_oversize_body_is_413(api: Api, alice: Account) -> None:
    text = "x" * (300 * 1024)
    response = await api.http.post(
        "/graphql",
        json={"query": CREATE, "variables": {"t": text}},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert response.status_code == 413
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["BAD_USER_INPUT"]
    assert await api.whole_feed(alice) == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"a string"',
        b"{}",
        b'{"query": 5}',
        b'{"query": "{ viewer { id } }", "variables": 3}',
    ],
)
async def test_malformed_http_bodies(api: Api, body: bytes) -> None:
    status, answer = await raw(api, body)
    assert 400 <= status < 500
    assert answer["errors"] and all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in answer["errors"])


async def test_bad_tokens_are_unauthenticated(api: Api, services: Services, alice: Account) -> None:
    secret = services.settings.jwt_secret
    assert secret
    now = int(time.time())
    expired = jwt.encode({"sub": "1", "iat": now - 100, "exp": now - 10}, secret, algorithm="HS256")
    header, payload, signature = alice.token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    forged = jwt.encode(
        {"sub": alice.id, "exp": now + 60}, "some-other-secret-" + "0123456789" * 3, algorithm="HS256"
    )
    unsigned = jwt.encode({"sub": "1", "exp": now + 60}, None, algorithm="none")
    no_expiry = jwt.encode({"sub": "1"}, secret, algorithm="HS256")
    for token in (expired, tampered, forged, unsigned, no_expiry, "garbage", "a.b.c"):
        assert_codes(await api.gql("{ viewer { id } }", token=token), "UNAUTHENTICATED")
        assert_codes(await api.gql(FEED, token=token), "UNAUTHENTICATED")
    for header_value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", f"Token {alice.token}", "Bearer a b"):
        response = await api.http.post(
            "/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": header_value}
        )
        errors = response.json()["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"], header_value
    # Lowercase scheme is fine.
    response = await api.http.post(
        "/graphql",
        json={"query": "{ viewer { handle } }"},
        headers={"Authorization": f"bearer {alice.token}"},
    )
    assert response.json()["data"] == {"viewer": {"handle": "alice"}}


async def test_token_of_a_deleted_user(api: Api, services: Services) -> None:
    ghost = await api.sign_up("ghost")
    await services.pool.execute("DELETE FROM users WHERE lower(handle) = 'ghost'")
    assert_codes(await api.gql("{ viewer { id } }", token=ghost.token), "UNAUTHENTICATED")
    assert_codes(await api.gql(CREATE, {"t": "boo"}, token=ghost.token), "UNAUTHENTICATED")


async def test_unexpected_errors_are_masked(
    api: Api, services: Services, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("password_hash column exploded at 10.0.0.5")

    monkeypatch.setattr(services.users, "by_handle", broken)
    monkeypatch.setattr(services.posts, "create", broken)
    for result in (
        await api.gql('{ user(handle: "alice") { id } }'),
        await api.gql(CREATE, {"t": "hi"}, token=alice.token),
    ):
        assert_codes(result, "INTERNAL")
        text = repr(result.errors)
        assert "exploded" not in text and "10.0.0.5" not in text and "RuntimeError" not in text
        assert "stacktrace" not in text and "exception" not in text.lower()


async def test_server_stays_healthy_after_abuse(api: Api, alice: Account) -> None:
    await api.gql(nested(MAX_DEPTH + 5))
    await raw(api, b"{not json")
    await api.http.post(
        "/graphql", content=b"x" * (1024 * 1024), headers={"content-type": "application/json"}
    )
    await api.gql(FEED, {"a": "garbage"}, token=alice.token)
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    post_id = await api.post(alice, "still here")
    assert await api.whole_feed(alice) == [post_id]


async def test_text_postgres_cannot_store_is_the_clients_error(api: Api, alice: Account) -> None:
    # A NUL reaches the API intact through JSON; PostgreSQL would refuse it as a server error.
    assert_codes(await api.gql(CREATE, {"t": "a\u0000b"}, token=alice.token), "BAD_USER_INPUT")
    signed = (
        "mutation($h: String!, $n: String) "
        '{ signUp(handle: $h, password: "password123", displayName: $n) { token } }'
    )
    assert_codes(await api.gql(signed, {"h": "nul", "n": "Nu\u0000ll"}), "BAD_USER_INPUT")
    log_in = 'mutation($h: String!) { logIn(handle: $h, password: "password123") { token } }'
    assert_codes(await api.gql(log_in, {"h": "alice\u0000"}), "UNAUTHENTICATED")
    assert (await api.gql("query($h: String!) { user(handle: $h) { id } }", {"h": "alice\u0000"})).ok() == {
        "user": None
    }

"""The fast path answers persisted queries exactly as Strawberry's view does: status, headers,
body (data, coded and masked errors, cost), metrics; whatever it does not handle, the view does."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from homefeed.app import MAX_BODY_BYTES
from homefeed.feed.services import Services
from homefeed.schema import schema
from homefeed.schema.persisted.fast import FastPath
from tests.api import Account, Api
from tests.exposition import sample
from tests.schema.execution import generate

FEED = """query HomeFeed($first: Int, $after: String, $withAuthor: Boolean = true, $skipLikes: Boolean!) {
  viewer { ...Who }
  feed: homeFeed(first: $first, after: $after) {
    __typename
    edges { cursor node { __typename id text
      likes: likeCount @skip(if: $skipLikes) viewerHasLiked
      author @include(if: $withAuthor) { ...Who } } }
    pageInfo { hasNextPage endCursor }
  }
}
fragment Who on User { __typename id handle displayName followerCount viewerFollows }"""
PROFILE = """query Profile($handle: String!, $id: ID!) {
  user(handle: $handle) { id handle posts(first: 2) { nodes { id text } pageInfo { hasNextPage } } }
  node(id: $id) { __typename id ... on Post { text author { handle } } ... on User { handle } }
}"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Paths:
    """The same services behind two apps: one with the fast path, one without."""

    fast: Api
    view: Api
    alice: Account
    bob: Account
    post_id: str

    async def both(
        self,
        text: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        *,
        get: bool = False,
    ) -> tuple[Answer, Answer]:
        """The answers of both apps to a hash-only request, once each has the document."""
        answers = []
        for api in (self.fast, self.view):
            await register(api, text)
            answers.append(await persisted(api, text, variables, token, get=get))
        return answers[0], answers[1]


async def register(api: Api, text: str) -> None:
    body = {"query": text, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}}
    await api.http.post("/graphql", json=body)


async def persisted(
    api: Api, text: str, variables: dict[str, Any] | None, token: str | None, *, get: bool = False
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}
    if get:
        params = {"extensions": orjson.dumps(extensions).decode()}
        if variables is not None:
            params["variables"] = orjson.dumps(variables).decode()
        response = await api.http.get("/graphql", params=params, headers=headers)
    else:
        response = await api.http.post(
            "/graphql", json={"variables": variables, "extensions": extensions}, headers=headers
        )
    return Answer(response.status_code, dict(response.headers), response.json())


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bytes | None]:
    """What the fast path answered (None: handed to the view), so a test knows which path ran."""
    seen: list[bytes | None] = []
    original = FastPath.run

    async def spy(self: FastPath, *args: Any) -> bytes | None:
        answer = await original(self, *args)
        seen.append(answer)
        return answer

    monkeypatch.setattr(FastPath, "run", spy)
    return seen


@asynccontextmanager
async def two_apps(services: Services) -> AsyncIterator[Paths]:
    async with Api.running(services) as fast, Api.running(services, fast_path=False) as view:
        alice = await fast.sign_up("alice")
        bob = await fast.sign_up("bob")
        (
            await fast.gql(
                "mutation($id: ID!) { follow(userId: $id) { id } }", {"id": bob.id}, token=alice.token
            )
        ).ok()
        post_id = ""
        for n in range(3):
            post_id = await fast.post(bob, f"post {n}")
            await fast.post(alice, f"mine {n}")
        yield Paths(fast, view, alice, bob, post_id)


@pytest.fixture
async def paths(services: Services) -> AsyncIterator[Paths]:
    async with two_apps(services) as made:
        yield made


async def test_the_feed_operation_is_identical_on_both_paths(
    paths: Paths, taken: list[bytes | None], compiled_runs: list[object]
) -> None:
    variables = {"first": 3, "skipLikes": False}
    fast, view = await paths.both(FEED, variables, paths.alice.token)
    assert taken and taken[-1] is not None, "the fast path answered"
    assert fast == view
    assert fast.status == 200
    feed = fast.body["data"]["feed"]
    assert len(feed["edges"]) == 3 and feed["pageInfo"]["hasNextPage"]
    assert fast.body["extensions"]["cost"]["requested"] > 0
    # The next page, by cursor, over GET this time.
    after = {**variables, "after": feed["pageInfo"]["endCursor"], "withAuthor": False, "skipLikes": True}
    fast, view = await paths.both(FEED, after, paths.alice.token, get=True)
    assert taken[-1] is not None
    assert fast == view
    assert "author" not in fast.body["data"]["feed"]["edges"][0]["node"]
    # Both fast answers came from the operation's generated code (one per @skip/@include values).
    assert len(compiled_runs) == 2 and all(code is not None for code in compiled_runs)


async def test_the_profile_operation_with_abstract_types_is_identical(
    paths: Paths, taken: list[bytes | None], compiled_runs: list[object]
) -> None:
    for token in (None, paths.alice.token):
        fast, view = await paths.both(PROFILE, {"handle": "bob", "id": paths.post_id}, token)
        assert taken[-1] is not None
        assert fast == view
        assert fast.body["data"]["node"]["__typename"] == "Post"
    assert len(compiled_runs) == 2


@pytest.mark.parametrize(
    ("variables", "token", "code"),
    [
        ({"first": 3, "skipLikes": False}, "not-a-token", "UNAUTHENTICATED"),  # bad token
        ({"first": 3, "skipLikes": False}, None, "UNAUTHENTICATED"),  # homeFeed needs a viewer
        ({"first": 3, "after": "garbage", "skipLikes": False}, "alice", "BAD_USER_INPUT"),  # bad cursor
        ({"first": 0, "skipLikes": False}, "alice", "BAD_USER_INPUT"),  # first out of range
        ({"first": "three", "skipLikes": False}, "alice", "BAD_USER_INPUT"),  # bad variable type
        ({"first": 3}, "alice", "BAD_USER_INPUT"),  # a required variable missing
    ],
)
async def test_errors_are_identical(
    paths: Paths, taken: list[bytes | None], variables: dict[str, Any], token: str | None, code: str
) -> None:
    fast, view = await paths.both(FEED, variables, paths.alice.token if token == "alice" else token)
    assert taken[-1] is not None
    assert fast == view
    assert code in [e["extensions"]["code"] for e in fast.body["errors"]]


async def test_internal_errors_are_masked_and_logged_alike(
    services: Services,
    paths: Paths,
    taken: list[bytes | None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail: db password is hunter2")

    monkeypatch.setattr(services.feeds, "home", broken)
    fast, view = await paths.both(FEED, {"first": 3, "skipLikes": False}, paths.alice.token)
    assert taken[-1] is not None
    assert fast == view
    assert [e["extensions"]["code"] for e in fast.body["errors"]] == ["INTERNAL"]
    assert "hunter2" not in str(fast.body)
    logged = [r for r in caplog.records if r.name == "homefeed.errors"]
    assert len(logged) == 2 and all("hunter2" in str(r.exc_info[1]) for r in logged if r.exc_info)


async def test_what_the_fast_path_leaves_to_the_view_is_still_answered_alike(
    paths: Paths, taken: list[bytes | None]
) -> None:
    cases: list[tuple[str, dict[str, Any] | None]] = [
        (
            "query Big { homeFeed(first: 100) { nodes { author { posts(first: 100) { nodes { id } } } } } }",
            None,
        ),  # over budget
        ("query { nope }", None),  # invalid: never registered, so NOT_FOUND
        ('mutation M { createPost(text: "x") { id } }', None),  # a mutation by hash, over POST
    ]
    for text, variables in cases:
        fast, view = await paths.both(text, variables, paths.alice.token)
        if text.startswith("mutation"):
            # New posts have new ids: the rest of the answer is the same.
            fast.body["data"]["createPost"]["id"] = view.body["data"]["createPost"]["id"] = "new"
        assert fast == view, text
    assert all(answer is None for answer in taken), "none of these was answered by the fast path"
    # Registration ran anonymously (refused); then each app ran the hashed mutation: the
    # request the fast path read and handed to the view ran once, not twice and not never.
    posts = await paths.fast.gql('query { user(handle: "alice") { posts(first: 10) { nodes { text } } } }')
    assert [n["text"] for n in posts.ok()["user"]["posts"]["nodes"]].count("x") == 2


async def test_metrics_count_fast_answers_like_the_views(paths: Paths, taken: list[bytes | None]) -> None:
    async def counts() -> tuple[float, float, float]:
        text = (await paths.fast.http.get("/metrics")).text
        return (
            sample(text, "homefeed_graphql_requests_total", operation="HomeFeed", outcome="ok"),
            sample(text, "homefeed_graphql_requests_total", operation="HomeFeed", outcome="error"),
            sample(text, "homefeed_graphql_request_seconds_count", operation="HomeFeed"),
        )

    ok = {"first": 2, "skipLikes": False}
    for api in (paths.fast, paths.view):
        await register(api, FEED)
        before = await counts()
        await persisted(api, FEED, ok, paths.alice.token)
        await persisted(api, FEED, ok, None)
        after = await counts()
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 2]
    assert len([t for t in taken if t is not None]) == 2


@settings(max_examples=60)
@given(
    case=generate.queries(schema._schema, extra={"String": ['"alice"', '"bob"']}),
    who=st.sampled_from(["alice", None, "bad"]),
)
async def test_generated_queries_are_identical_on_both_paths(
    paths: Paths, taken: list[bytes | None], case: tuple[str, dict[str, Any]], who: str | None
) -> None:
    """Documents generated from the schema (fragments, aliases, variables, bad arguments and
    tokens) get the same answer from both paths, whichever of them the fast path takes."""
    text, variables = case
    # A RANKED first page ranks anew and names a new snapshot on every request, by design:
    # two requests never give the same cursors, whichever path answers them.
    assume("RANKED" not in text and "RANKED" not in variables.values())
    token = {"alice": paths.alice.token, None: None, "bad": "bad-token"}[who]
    taken.clear()
    fast, view = await paths.both(text, variables, token)
    assert fast == view, text
    event("fast path" if taken and taken[-1] is not None else "view")


async def test_a_body_over_the_limit_is_refused_alike_and_never_read_by_the_fast_path(
    paths: Paths, taken: list[bytes | None]
) -> None:
    # A persisted request padded past the body limit: the fast path leaves it to BodyLimit.
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha(FEED)}}
    body = orjson.dumps({"variables": {"pad": "x" * (MAX_BODY_BYTES + 1)}, "extensions": extensions})
    statuses = []
    for api in (paths.fast, paths.view):
        await register(api, FEED)
        response = await api.http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
        statuses.append((response.status_code, response.json()))
    assert statuses[0] == statuses[1]
    assert statuses[0][0] == 413
    assert taken == []


@pytest.mark.parametrize(
    ("lengths", "status"),
    [
        pytest.param([str(MAX_BODY_BYTES + 1)], 413, id="over the limit"),
        pytest.param(["{n}", "{n}"], 200, id="the same twice"),
        pytest.param(["{n}, {n}"], 200, id="the same listed twice"),
        pytest.param(["{n}", "5"], 400, id="two that differ"),
        pytest.param(["5", "{n}"], 400, id="two that differ, the right one last"),
        pytest.param(["{n}, 5"], 400, id="a list that differs"),
        pytest.param(["ten"], 400, id="not a number"),
        pytest.param(["-5"], 400, id="negative"),
        pytest.param([""], 400, id="empty"),
    ],
)
async def test_both_paths_read_content_length_by_one_rule(
    paths: Paths, taken: list[bytes | None], lengths: list[str], status: int
) -> None:
    # Whichever header a path would have read first, a disagreement is refused, not guessed.
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha(FEED)}}
    body = orjson.dumps({"variables": {"first": 2, "skipLikes": False}, "extensions": extensions})
    headers = [("content-type", "application/json"), ("authorization", f"Bearer {paths.alice.token}")]
    headers += [("content-length", value.format(n=len(body))) for value in lengths]
    answers = []
    for api in (paths.fast, paths.view):
        await register(api, FEED)
        taken.clear()
        response = await api.http.post("/graphql", content=body, headers=headers)
        answers.append((response.status_code, response.json()))
        if api is paths.fast:
            answered_fast = bool(taken and taken[-1] is not None)
    assert answers[0] == answers[1]
    assert answers[0][0] == status, answers[0]
    # Only a body of one declared length within the limit is read by the fast path.
    assert answered_fast == (status == 200)


async def test_a_body_without_a_declared_length_goes_to_the_view(
    paths: Paths, taken: list[bytes | None]
) -> None:
    # Chunked (no Content-Length): the body limit counts it as it arrives, so the view takes it.
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha(FEED)}}
    body = orjson.dumps({"variables": {"first": 2, "skipLikes": False}, "extensions": extensions})

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:10]
        yield body[10:]

    answers = []
    for api in (paths.fast, paths.view):
        await register(api, FEED)
        response = await api.http.post(
            "/graphql",
            content=chunks(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {paths.alice.token}"},
        )
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200 and answers[0][1]["data"]["feed"]["edges"]
    assert taken == []

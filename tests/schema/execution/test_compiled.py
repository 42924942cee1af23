"""The compiled executor on homefeed's own operations: the web client's and the bench's feed page, a
profile, and one with everything the compiler must take (an interface, fragments, aliases,
variables, @skip/@include, __typename) run from generated code, answering as graphql-core does."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import strawberry

from homefeed.bench.reads.load import FEED as BENCH_FEED
from homefeed.feed.services import Services
from homefeed.resolvers.context import Context
from homefeed.schema import build_schema
from homefeed.schema.execution.compiled import CompiledExecutionContext
from homefeed.schema.execution.plan import plans_for
from tests.api import Api
from tests.schema.execution.sample import errors_of
from tests.small_world import World, seed

COMPILED = build_schema(execution_context_class=CompiledExecutionContext)
PLAIN = build_schema(execution_context_class=None)

POST_FIELDS = "id text createdAt likeCount viewerHasLiked author { id handle displayName }"
WEB_FEED = f"""query HomeFeed($first: Int, $after: String, $order: FeedOrder) {{
  homeFeed(first: $first, after: $after, order: $order) {{
    nodes {{ {POST_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
PROFILE = """query Profile($h: String!) { user(handle: $h) { __typename handle displayName
  followerCount followingCount viewerFollows posts(first: 3) { nodes { text likeCount } } } }"""
EVERYTHING = """query Everything($id: ID!, $full: Boolean!, $brief: Boolean = false) {
  me: viewer { ...Who @include(if: $full) handle }
  thing: node(id: $id) { __typename id ... on Post { text author { ...Who } }
                         ... on User { handle @skip(if: $brief) } }
  feed: homeFeed(first: 2) @skip(if: $brief) {
    edges { cursor n: node { ... on Post @include(if: $full) { likeCount viewerHasLiked } id } }
    pageInfo { hasNextPage } }
}
fragment Who on User { __typename id handle viewerFollows followerCount }"""


@pytest.fixture
async def world(api: Api) -> World:
    return await seed(api)


async def _both(services: Services, query: str, variables: dict[str, Any], token: str | None) -> Any:
    answers = []
    for on in (COMPILED, PLAIN):
        result = await on.execute(
            query,
            variable_values=variables,
            context_value=Context(services=services, token=token, client_key="test"),
        )
        answers.append((result.data, errors_of(result)))
    assert answers[0] == answers[1], f"{query}\n{variables}\n{answers[0]}\n{answers[1]}"
    return answers[0]


def _compiled_plans(name: str) -> list[object]:
    """The generated code of each plan of the most recently run operation called `name`.

    The plan cache lives as long as the schema, so it may still hold an earlier test's parse
    of the same document (another object, with plans of its own): only the latest counts.
    """
    by_operation: dict[int, list[object]] = {}
    for operation, plan in plans_for(COMPILED._schema).entries():
        if operation.name is not None and operation.name.value == name:
            by_operation.setdefault(id(operation), []).append(plan.compiled if plan is not None else None)
    return list(by_operation.values())[-1] if by_operation else []


@pytest.mark.parametrize(
    ("query", "name"),
    [(WEB_FEED, "HomeFeed"), (BENCH_FEED, "HomeFeed"), (PROFILE, "Profile")],
    ids=["web-feed", "bench-feed", "profile"],
)
async def test_feed_and_profile_run_from_generated_code(
    services: Services, world: World, compiled_runs: list[object], query: str, name: str
) -> None:
    alice = world.accounts[0]
    variables = {"h": "bob"} if name == "Profile" else {"first": 3}
    data, errors = await _both(services, query, variables, alice.token)
    assert data is not None and errors == []
    if name == "HomeFeed":
        after = data["homeFeed"]["pageInfo"]["endCursor"]
        await _both(services, query, {"first": 3, "after": after}, alice.token)
        # Anonymous: homeFeed needs a viewer; the error and the null are graphql-core's.
        data, errors = await _both(services, query, {"first": 3}, None)
        assert errors
    assert compiled_runs and all(code is not None for code in compiled_runs)
    assert all(code is not None for code in _compiled_plans(name))


async def test_interfaces_fragments_aliases_and_conditions_run_from_generated_code(
    services: Services, world: World, compiled_runs: list[object]
) -> None:
    alice = world.accounts[0]
    combinations = [
        {"id": some_id, "full": full, **({} if brief is None else {"brief": brief})}
        for some_id in (world.posts[0], world.accounts[1].id, world.deleted, "bad")
        for full in (True, False)
        for brief in (None, True)
    ]
    for variables in combinations:
        for token in (alice.token, None, "not.a.token"):
            await _both(services, EVERYTHING, variables, token)
    assert len(compiled_runs) == len(combinations) * 3
    # One plan, and its code, per combination of the conditions' variables ($full, $brief).
    codes = _compiled_plans("Everything")
    assert len(codes) == 4 and all(code is not None for code in codes)


async def test_an_operation_the_plan_refuses_runs_through_graphql_core_with_its_reason_logged_once(
    services: Services, world: World, compiled_runs: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="homefeed.execution")
    # A name of its own: the parser cache would hand another run of this test the same (known) node.
    name = f"Introspecting_{uuid.uuid4().hex}"
    query = f'query {name} {{ user(handle: "bob") {{ handle }} __type(name: "User") {{ name }} }}'
    for _ in range(3):
        await _both(services, query, {}, None)
    assert compiled_runs == []
    assert _compiled_plans(name) == [None]
    [record] = [r for r in caplog.records if r.name == "homefeed.execution"]
    assert f"{name} runs through graphql-core: introspection" in record.getMessage()


# An object of the type's own class skips the completion's checks in generated code, unless
# strawberry.cast marked it as another type: then the check must refuse it as graphql-core does.
@strawberry.interface
class Named:
    name: str


@strawberry.type
class Cat(Named):
    lives: int


@strawberry.type
class Dog(Named):
    good: bool


@strawberry.type
class Leash:
    pet: Cat  # a plain attribute, read without a resolver


def _cat(name: str, as_dog: bool = False) -> Cat:
    cat = Cat(name=name, lives=9)
    return strawberry.cast(Dog, cat) if as_dog else cat


@strawberry.type
class Pets:
    @strawberry.field
    def cat(self, as_dog: bool) -> Cat:
        return _cat("tom", as_dog)

    @strawberry.field
    def cats(self, as_dog: bool) -> list[Cat | None]:
        return [_cat("a"), _cat("b", as_dog), _cat("c")]

    @strawberry.field
    def leash(self, as_dog: bool) -> Leash | None:
        return Leash(pet=_cat("rex", as_dog))


PETS_COMPILED = strawberry.Schema(query=Pets, types=[Dog], execution_context_class=CompiledExecutionContext)
PETS_PLAIN = strawberry.Schema(query=Pets, types=[Dog])


@pytest.mark.parametrize("as_dog", [False, True])
async def test_an_object_cast_to_another_type_is_refused_as_graphql_core_refuses_it(
    compiled_runs: list[object], as_dog: bool
) -> None:
    query = """query Pets($d: Boolean!) { cat(asDog: $d) { name lives } cats(asDog: $d) { name }
               leash(asDog: $d) { pet { name lives } } }"""
    answers = []
    for on in (PETS_COMPILED, PETS_PLAIN):
        result = await on.execute(query, variable_values={"d": as_dog})
        answers.append((result.data, errors_of(result)))
    assert answers[0] == answers[1]
    data, errors = answers[0]
    if as_dog:  # a cast object refused where it stands: Query.cat is non-null, nulling the root
        assert data is None and any("Expected value of type 'Cat'" in e[0] for e in errors)
    else:
        assert data is not None and errors == []
    assert len(compiled_runs) == 1

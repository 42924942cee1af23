"""The query cost limit: what counts, that a query over the budget is refused before any SQL
runs, that the cost is reported, and that the documented client queries fit the default budget."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from graphql import get_introspection_query, parse
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed import config
from homefeed.feed.config import DEFAULTS, SettingsError
from homefeed.feed.services import Services
from homefeed.schema import schema
from homefeed.schema.cost import counted_cost, operation_cost
from tests.api import Api
from tests.conftest import Counted, ServicesFactory

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"

# The attack of issue 12: three nested pages of 100, about a million posts in one answer.
NESTED = """{ user(handle: "victim") { posts(first: 100) { nodes { author {
  posts(first: 100) { nodes { author { posts(first: 100) { nodes { id text } } } } } } } } } }"""
NESTED_COST = 1 + 1 + 100 + 100 + 100 * (1 + 100 + 100 + 100 * (1 + 100))
# The heaviest page a client needs: a full feed page with authors, their counts and like flags.
FULL_PAGE = """{ homeFeed(first: 100) {
  edges { cursor node { id text createdAt likeCount viewerHasLiked
                        author { id handle displayName followerCount followingCount viewerFollows } } }
  nodes { id author { handle } }
  pageInfo { hasNextPage endCursor } } }"""
FULL_PAGE_COST = 1 + 100 + 100 + 100 + 100 + 100 + 1
# docs/api.md's worked example, with the figure the docs give.
WORKED = """query($n: Int) { viewer { handle }
  homeFeed(first: $n) { edges { node { text author { handle posts(first: 3) { nodes { text } } } } }
                        pageInfo { endCursor } } }"""
WORKED_COST = 1 + 1 + 10 + 10 + 10 + 10 * (1 + 3) + 1


def cost(query: str, variables: dict[str, Any] | None = None, operation: str | None = None) -> int:
    return operation_cost(schema._schema, parse(query), operation, variables)


def test_the_documented_figures() -> None:
    assert cost(NESTED) == NESTED_COST == 1_030_302
    assert cost(FULL_PAGE) == FULL_PAGE_COST == 502 <= DEFAULTS.query_cost_budget
    assert cost(WORKED, {"n": 10}) == WORKED_COST == 73
    docs = DOCS.read_text()
    assert "costs 73" in docs and f"`HOMEFEED_QUERY_COST_BUDGET` ({DEFAULTS.query_cost_budget:,})" in docs


def test_what_counts() -> None:
    # Scalars are free; every object counts; a page's lists hold `first` items each.
    assert cost("{ viewer { id handle followerCount } }") == 1
    assert cost("{ homeFeed(first: 7) { pageInfo { hasNextPage } } }") == 2
    assert cost("{ homeFeed(first: 7) { edges { cursor } } }") == 1 + 7
    assert cost("{ homeFeed(first: 7) { edges { node { id } } nodes { id } } }") == 1 + 7 + 7 + 7
    # Omitted or null: the default page of 20; out of range: taken as 1..100.
    assert cost("{ homeFeed { nodes { id } } }") == cost("{ homeFeed(first: null) { nodes { id } } }") == 21
    assert cost("{ homeFeed(first: 0) { nodes { id } } }") == 2
    assert cost("{ homeFeed(first: 100000) { nodes { id } } }") == 101
    # Variables: their value, else the variable's default, else the argument's.
    paged = "query($f: Int = 4) { homeFeed(first: $f) { nodes { id } } }"
    assert (cost(paged, {"f": 9}), cost(paged), cost(paged, {"f": None})) == (10, 5, 21)
    # Abstract types and fragments count where they are spread; introspection is free.
    node = 'query { node(id: "x") { ... on User { posts(first: 5) { nodes { id } } } ...P } }'
    assert cost(node + " fragment P on Post { author { handle } }") == 1 + 1 + 5 + 1
    assert cost(get_introspection_query()) == 0
    # Mutations and subscriptions count the same way; so does the operation a request names.
    assert cost('mutation { follow(userId: "x") { posts(first: 2) { nodes { id } } } }') == 1 + 1 + 2
    assert cost("subscription { homeFeedUpdates { post { author { handle } } } }") == 3
    two = "query A { viewer { id } } query B { homeFeed { nodes { id } } }"
    assert (cost(two, operation="A"), cost(two, operation="B"), cost(two)) == (1, 21, 0)


def test_fragment_cycles_do_not_hang_the_count() -> None:
    cyclic = "{ viewer { ...A } } fragment A on User { posts { nodes { author { ...A } } } }"
    assert cost(cyclic) == 1 + 1 + 20 + 20


# Hypothesis: selections on User, nesting pages of posts whose authors select again.
Sel = list[Any]


def _selection(children: st.SearchStrategy[Sel]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(["id", "handle", "followerCount"]),
        st.tuples(st.just("posts"), st.integers(1, 100), children),
        st.tuples(st.just("inline"), children),
    )


selections: st.SearchStrategy[Sel] = st.recursive(
    st.lists(st.sampled_from(["id", "handle"]), min_size=1, max_size=2),
    lambda children: st.lists(_selection(children), min_size=1, max_size=3),
    max_leaves=8,
)


def render(sel: Sel, counter: list[int] | None = None) -> str:
    """A selection set on User; every connection gets its own alias so siblings never merge."""
    counter = counter if counter is not None else [0]
    parts: list[str] = []
    for item in sel:
        if isinstance(item, str):
            parts.append(item)
        elif item[0] == "posts":
            counter[0] += 1
            inner = render(item[2], counter)
            parts.append(
                f"p{counter[0]}: posts(first: {item[1]}) {{ nodes {{ id author {{ {inner} }} }}"
                " pageInfo { hasNextPage } }"
            )
        else:
            parts.append(f"... on User {{ {render(item[1], counter)} }}")
    return " ".join(parts)


def on_user(sel: Sel) -> int:
    return cost(f'{{ user(handle: "x") {{ {render(sel)} }} }}')


def firsts(sel: Sel) -> list[int]:
    found: list[int] = []
    for item in sel:
        if isinstance(item, tuple) and item[0] == "posts":
            found += [item[1], *firsts(item[2])]
        elif isinstance(item, tuple):
            found += firsts(item[1])
    return found


def bump(sel: Sel, target: int, by: int, seen: list[int]) -> Sel:
    """The selection with its `target`-th page (depth first) asking for `by` more."""
    out: Sel = []
    for item in sel:
        if isinstance(item, tuple) and item[0] == "posts":
            index = seen[0]
            seen[0] += 1
            first = min(item[1] + by, 100) if index == target else item[1]
            out.append(("posts", first, bump(item[2], target, by, seen)))
        elif isinstance(item, tuple):
            out.append(("inline", bump(item[1], target, by, seen)))
        else:
            out.append(item)
    return out


@given(selections, st.data())
def test_cost_is_monotone_in_first(sel: Sel, data: st.DataObject) -> None:
    pages = firsts(sel)
    if not pages:
        return
    target = data.draw(st.integers(0, len(pages) - 1))
    by = data.draw(st.integers(1, 100))
    assert on_user(bump(sel, target, by, [0])) >= on_user(sel)
    if pages[target] < 100:  # a bigger page holds more: strictly more
        assert on_user(bump(sel, target, by, [0])) > on_user(sel)


@given(selections, selections)
def test_siblings_add_up(one: Sel, other: Sel) -> None:
    both = cost(f'{{ a: user(handle: "x") {{ {render(one)} }} b: user(handle: "y") {{ {render(other)} }} }}')
    assert both == on_user(one) + on_user(other)
    # The same holds within one object: its fields' costs add up (over the object's own 1).
    assert on_user([*one, ("inline", other)]) == on_user(one) + on_user(other) - 1


@given(selections, st.integers(1, 100))
def test_nesting_multiplies(sel: Sel, first: int) -> None:
    nested = cost(
        f'{{ user(handle: "x") {{ posts(first: {first}) {{ nodes {{ author {{ {render(sel)} }} }} }} }} }}'
    )
    # user, the page, its `first` posts and their authors, and under each author the selection.
    assert nested == 1 + 1 + first + first + first * (on_user(sel) - 1)


@given(selections, st.integers(-5, 200))
def test_variables_count_as_their_values(sel: Sel, first: int) -> None:
    inner = render(sel)
    literal = cost(
        f'{{ user(handle: "x") {{ posts(first: {first}) {{ nodes {{ author {{ {inner} }} }} }} }} }}'
    )
    by_variable = cost(
        "query($f: Int) "
        f'{{ user(handle: "x") {{ posts(first: $f) {{ nodes {{ author {{ {inner} }} }} }} }} }}',
        {"f": first},
    )
    assert literal == by_variable


@given(selections)
def test_fragments_cost_what_they_spread(sel: Sel) -> None:
    inner = render(sel)
    spread = cost(f'{{ user(handle: "x") {{ ...F }} }} fragment F on User {{ {inner} }}')
    assert spread == on_user(sel) == cost(f'{{ user(handle: "x") {{ ... {{ {inner} }} }} }}')


PAGED_TWICE = parse(
    "query($f: Int = 4, $g: Int, $a: String) { homeFeed(first: $f, after: $a) { nodes { author {"
    " posts(first: $g) { nodes { id } } } } } }"
)


@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "f": st.none() | st.integers(-3, 150),
                "g": st.none() | st.integers(-3, 150) | st.just("7") | st.just(True),
                "a": st.text(max_size=3),
            },
        ),
        max_size=6,
    )
)
def test_remembered_costs_equal_counted_ones(requests: list[dict[str, Any]]) -> None:
    """The per-document memo gives what counting again would, whatever the variables (absent,
    null, out of range, of the wrong type, or not page sizes at all), in any order."""
    for variables in requests:
        expected = operation_cost(schema._schema, PAGED_TWICE, None, variables)
        assert counted_cost(schema._schema, PAGED_TWICE, None, variables) == expected


# Against the served API.


def walkthrough_queries() -> list[str]:
    """Every GraphQL document in docs/api.md's curl walk-through."""
    text = DOCS.read_text()
    block = text.split("## Walk-through with curl", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    found = re.findall(r"'((?:query|mutation|subscription|\{ )[^']*)'", block)
    for query in found:
        parse(query)
    return found


async def post(
    api: Api, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200
    return response.json()


async def test_the_nested_query_is_refused_before_any_sql(counted: Counted) -> None:
    api, statements = counted.api, counted.statements
    victim = await api.sign_up("victim")
    for n in range(3):
        await api.post(victim, f"post {n}")
    # Anonymous and signed in (a token is checked by a look-up, which must not run either).
    for token in (None, victim.token):
        statements.clear()
        body = await post(api, NESTED, token=token)
        assert statements == []
        assert body.get("data") is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert f"{NESTED_COST}" in error["message"] and f"{DEFAULTS.query_cost_budget}" in error["message"]
        assert error["extensions"]["cost"] == {"requested": NESTED_COST, "budget": DEFAULTS.query_cost_budget}
        assert body["extensions"]["cost"] == {"requested": NESTED_COST, "budget": DEFAULTS.query_cost_budget}
    # The same shape with small pages runs, and says what it cost.
    small = NESTED.replace("first: 100", "first: 2")
    body = await post(api, small)
    assert "errors" not in body
    assert len(body["data"]["user"]["posts"]["nodes"]) == 2
    assert body["extensions"]["cost"] == {"requested": cost(small), "budget": DEFAULTS.query_cost_budget}


async def test_cost_is_reported_on_success(api: Api) -> None:
    viewer = await api.sign_up("reader")
    await api.post(viewer, "hello")
    body = await post(api, FULL_PAGE, token=viewer.token)
    assert "errors" not in body and len(body["data"]["homeFeed"]["nodes"]) == 1
    assert body["extensions"] == {"cost": {"requested": FULL_PAGE_COST, "budget": DEFAULTS.query_cost_budget}}
    body = await post(api, WORKED, {"n": 10}, token=viewer.token)
    assert "errors" not in body and body["extensions"]["cost"]["requested"] == WORKED_COST


async def test_the_walkthrough_fits_the_default_budget(api: Api) -> None:
    queries = walkthrough_queries()
    assert len(queries) >= 10
    costs = {q: cost(q) for q in queries}
    heaviest = max(costs, key=lambda q: costs[q])
    assert costs[heaviest] <= DEFAULTS.query_cost_budget
    # Run the heaviest as the walk-through does (it reads bob's posts, anonymously).
    assert 'user(handle: "bob")' in heaviest
    bob = await api.sign_up("bob")
    for text in ("first", "second", "third"):
        await api.post(bob, text)
    body = await post(api, heaviest)
    assert "errors" not in body
    assert [n["text"] for n in body["data"]["user"]["posts"]["nodes"]] == ["third", "second", "first"]
    assert body["extensions"]["cost"] == {"requested": costs[heaviest], "budget": DEFAULTS.query_cost_budget}


async def test_the_budget_is_a_setting(make_services: ServicesFactory) -> None:
    services: Services = await make_services(query_cost_budget=10)
    async with Api.running(services) as api:
        paged = "query($f: Int) { homeFeed(first: $f) { nodes { id } } }"
        refused = await post(api, paged, {"f": 10})
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["BAD_USER_INPUT"]
        assert "query cost 11 exceeds the budget of 10" in refused["errors"][0]["message"]
        # Within the budget it runs (and fails for its own reason: nobody is signed in).
        allowed = await post(api, paged, {"f": 9})
        assert [e["extensions"]["code"] for e in allowed["errors"]] == ["UNAUTHENTICATED"]
        assert allowed["extensions"]["cost"] == {"requested": 10, "budget": 10}


async def test_introspection_is_free(api: Api) -> None:
    body = await post(api, get_introspection_query())
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"
    assert body["extensions"]["cost"]["requested"] == 0


async def test_invalid_documents_are_refused_by_validation_not_the_cost(api: Api) -> None:
    cyclic = "{ viewer { ...A } } fragment A on User { posts { nodes { author { ...A } } } }"
    body = await post(api, cyclic)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    assert "cost" not in body["errors"][0]["message"]
    assert "cost" not in body.get("extensions", {})


async def test_a_subscription_over_the_budget_is_refused() -> None:
    # Each live update would carry 10,000 posts.
    heavy = """subscription { homeFeedUpdates { post { author { posts(first: 100) { nodes {
      author { posts(first: 100) { nodes { id } } } } } } } } }"""
    assert cost(heavy) == 3 + 1 + 100 + 100 + 100 * (1 + 100)
    stream = await schema.subscribe(heavy)
    assert isinstance(stream, AsyncGenerator)
    results = [r async for r in stream]  # ends at once: refused, never subscribed
    [result] = results
    assert result.data is None and result.errors is not None
    [error] = result.errors
    assert "exceeds the budget" in error.message and error.extensions
    assert error.extensions["code"] == "BAD_USER_INPUT"


def test_the_setting_is_parsed_and_checked() -> None:
    assert config.load({"HOMEFEED_QUERY_COST_BUDGET": "5_000"}).query_cost_budget == 5000
    for bad in ("0", "-1", "lots"):
        with pytest.raises(SettingsError, match="HOMEFEED_QUERY_COST_BUDGET"):
            config.load({"HOMEFEED_QUERY_COST_BUDGET": bad})

"""The plan path is taken when a query allows it, and graphql-core's otherwise."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import strawberry
from graphql import build_schema, parse
from strawberry.extensions import ParserCache

from homefeed.schema.execution import PlannedExecutionContext, compat
from homefeed.schema.execution.plan import MAX_VARIANTS, Plans, plans_for
from tests.schema.execution.sample import CONFIG, PLANNED, Context, Query, assert_same


def _plans_for(query_fragment: str) -> list[object]:
    """The cached plans of operations whose source contains the fragment."""
    found: list[object] = []
    for operation, plan in plans_for(PLANNED._schema).entries():
        loc = operation.loc
        if loc is not None and query_fragment in loc.source.body:
            found.append(plan)
    return found


@pytest.mark.parametrize(
    "query",
    [
        "{ plannedA: items { id shout child { name } } }",
        '{ plannedB: item(id: "1") { ...F } } fragment F on Item { label(prefix: "x") __typename }',
        "query PlannedC($n: Int) { items(first: $n) { asyncCheck } }",
        # Interfaces: planned up to the value, completed below it by graphql-core.
        '{ plannedD: node(id: "1") { id ... on Item { name child { name } } } }',
        "{ plannedE: items { asNode { __typename id ... on Item { shout } } } }",
    ],
)
async def test_plannable_queries_take_the_plan(planned_runs: list[object], query: str) -> None:
    await assert_same(query, {"n": 2} if "$n" in query else None)
    assert len(planned_runs) == 1
    assert planned_runs[0] is not None
    plans = _plans_for(query)
    assert plans and all(plan is not None for plan in plans)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ('{ fallbackC: item(id: "1") { id } __type(name: "Item") { name } }', None),
        ("{ fallbackD: items { id } __schema { queryType { name } } }", None),
    ],
)
async def test_unplannable_queries_fall_back(
    planned_runs: list[object], query: str, variables: dict[str, Any] | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="homefeed.execution")
    await assert_same(query, variables)
    assert planned_runs == []
    assert _plans_for(query) == [None]
    # The reason is logged once, when the operation is first seen: by each schema with a plan cache
    # (the planned one and the compiled one assert_same also runs).
    records = [r for r in caplog.records if r.name == "homefeed.execution"]
    assert len(records) == 2
    assert all("runs through graphql-core" in r.getMessage() for r in records)


async def test_mutations_fall_back(planned_runs: list[object]) -> None:
    await assert_same('mutation { fallbackMutation: rename(id: "1", name: "one") { id name shout } }')
    assert planned_runs == []


# With a parser cache, as the served schema has: one operation node per document, whose plans
# are then kept (without it, every request parses a node of its own).
CACHED = strawberry.Schema(
    query=Query,
    config=CONFIG,
    execution_context_class=PlannedExecutionContext,
    extensions=[lambda: ParserCache()],
)


def _cached_plans(name: str) -> list[object]:
    return [plan for op, plan in plans_for(CACHED._schema).entries() if op.name and op.name.value == name]


CONDITIONAL = """query Conditional($a: Boolean!, $b: Boolean = true) {
  items { id name @skip(if: $a) ...F @include(if: $b) child @include(if: true) { id } } }
fragment F on Item { shout label @skip(if: $b) }"""


async def test_skip_and_include_are_planned_once_per_combination_of_their_variables(
    planned_runs: list[object],
) -> None:
    # Every combination answers as graphql-core does, from a plan of its own.
    combinations = [{"a": a, "b": b} for a in (False, True) for b in (False, True)]
    for variables in combinations:
        await assert_same(CONDITIONAL, variables)
    assert len(planned_runs) == 4 and all(plan is not None for plan in planned_runs)
    assert len({repr(plan) for plan in planned_runs}) == 4, "each combination selects other fields"
    # With the parser cache (as the served schema has), one operation node: the same values
    # reuse their plan, and an omitted $b takes its default (true).
    for variables in [*combinations, {"a": True, "b": True}, {"a": True}]:
        result = await CACHED.execute(CONDITIONAL, variable_values=variables, context_value=Context())
        assert result.errors is None
    assert planned_runs[8] is planned_runs[7] and planned_runs[9] is planned_runs[7]
    assert len(_cached_plans("Conditional")) == 4


async def test_one_operation_keeps_a_bounded_number_of_plans(planned_runs: list[object]) -> None:
    names = [f"v{i}" for i in range(6)]
    query = (
        f"query Many({', '.join(f'${n}: Boolean!' for n in names)}) {{ items {{ id "
        + " ".join(f"{n}: name @include(if: ${n})" for n in names)
        + " } }"
    )
    for bits in range(40):
        variables = {n: bool(bits >> i & 1) for i, n in enumerate(names)}
        await assert_same(query, variables)
        result = await CACHED.execute(query, variable_values=variables, context_value=Context())
        assert result.errors is None
    assert len(planned_runs) == 80
    assert len(_cached_plans("Many")) == MAX_VARIANTS


def test_other_directives_are_left_to_graphql_core() -> None:
    schema = build_schema("directive @traced on FIELD\ntype Query { a: String b: String }")
    for text in ("{ a @traced }", "{ ...F } fragment F on Query { b @include(if: true) a @traced }"):
        executor = compat.ExecutionContext.build(schema, parse(text))
        assert isinstance(executor, compat.ExecutionContext)
        plans = Plans()
        assert plans.for_operation(executor) is None
        assert [plan for _, plan in plans.entries()] == [None]

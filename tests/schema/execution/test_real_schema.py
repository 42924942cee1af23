"""The planned and compiled executors against graphql-core's own on homefeed's schema, over real
PostgreSQL and Redis holding a small world: queries generated from the schema (fields, aliases,
fragments, variables, @skip/@include, bad arguments, broken syntax), anonymous, signed in and with
a bad token, give the same data, the same errors and the same extensions. Queries only: a mutation
would change the world between the runs; and no RANKED order, whose first page differs from run to
run by design.
HOMEFEED_EXECUTOR_EXAMPLES sets the number of generated queries."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from strawberry.types import ExecutionResult

from homefeed.feed.services import Services
from homefeed.resolvers.context import Context
from homefeed.schema import build_schema, schema
from homefeed.schema.execution.compiled import CompiledExecutionContext
from tests.api import Api
from tests.schema.execution import generate
from tests.schema.execution.sample import ErrorKey, errors_of
from tests.small_world import World, seed

EXAMPLES = int(os.environ.get("HOMEFEED_EXECUTOR_EXAMPLES", "150"))
PLANNED = schema
# The persisted fast path's executor: the plan's generated code.
COMPILED = build_schema(execution_context_class=CompiledExecutionContext)
# None: graphql-core's own executor, as Strawberry uses it by default.
PLAIN = build_schema(execution_context_class=None)


@pytest.fixture
async def world(api: Api, services: Services) -> World:
    # RANKED ranks at its clock's instant (post ages): pinned, both executors get the same page,
    # and so the same snapshot and cursors (a snapshot is named by its content).
    now = time.time()
    services.ranker.clock = lambda: now
    return await seed(api)


def _quoted(values: list[str]) -> list[str]:
    return [json.dumps(v) for v in values]


async def _run(
    on: Any, services: Services, query: str, variables: dict[str, Any], token: str | None
) -> tuple[Any, list[ErrorKey], Any]:
    result: ExecutionResult = await on.execute(
        query,
        variable_values=variables,
        context_value=Context(services=services, token=token, client_key="test"),
    )
    return result.data, errors_of(result), result.extensions


@settings(max_examples=EXAMPLES)
@given(data=st.data())
async def test_generated_queries_on_the_real_schema(services: Services, world: World, data: Any) -> None:
    """The plan and its compiled code answer every generated query (@skip/@include included)
    exactly as graphql-core does, and never INTERNAL."""
    extra = {
        "ID": _quoted(world.ids),
        "String": _quoted([*world.handles, "@DAVE", *world.cursors]),
        "Int": ["3", "20", "101"],
    }
    query, variables = data.draw(generate.queries(PLANNED._schema, extra=extra), label="query")
    # Each RANKED first page ranks at its own instant and keeps a snapshot of its own (named in
    # its cursors): two runs differ by design, whatever executes them.
    assume("RANKED" not in query and "RANKED" not in variables.values())
    token = data.draw(
        st.sampled_from([None, world.accounts[0].token, world.accounts[3].token, "not.a.token"]),
        label="token",
    )
    names = data.draw(st.permutations(["planned", "compiled", "plain"]), label="order")
    on = {"planned": PLANNED, "compiled": COMPILED, "plain": PLAIN}
    answers = {name: await _run(on[name], services, query, variables, token) for name in names}
    first = answers["plain"]
    event("answered with data" if first[0] else "answered without data")
    event(f"errors: {min(len(first[1]), 3)}{'+' if len(first[1]) >= 3 else ''}")
    for name in ("planned", "compiled"):
        assert answers[name] == first, f"{name}\n{query}\n{variables}\n{answers[name]}\n{first}"
    assert "Internal server error" not in [message for message, _, _ in first[1]], query

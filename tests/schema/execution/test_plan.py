"""The plan path is taken when a query allows it, and graphql-core's otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from homefeed.schema.execution import run
from homefeed.schema.execution.plan import Plan, plans_for
from tests.schema.execution.sample import PLANNED, assert_same


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The plans executed by `Run.execute` during the test."""
    seen: list[object] = []
    original = run.Run.execute

    def spy(self: run.Run, plan: Plan) -> Any:
        seen.append(plan)
        return original(self, plan)

    monkeypatch.setattr(run.Run, "execute", spy)
    yield seen


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
    ],
)
async def test_plannable_queries_take_the_plan(runs: list[object], query: str) -> None:
    await assert_same(query, {"n": 2} if "$n" in query else None)
    assert len(runs) == 1
    assert runs[0] is not None
    plans = _plans_for(query)
    assert plans and all(plan is not None for plan in plans)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($s: Boolean!) { fallbackA: items { id @skip(if: $s) } }", {"s": False}),
        ('{ fallbackB: item(id: "1") { id ...F } } fragment F on Item { name @include(if: true) }', None),
        ('{ fallbackC: item(id: "1") { id } __type(name: "Item") { name } }', None),
        ("{ fallbackD: items { id } __schema { queryType { name } } }", None),
        ('{ fallbackE: node(id: "1") { id } }', None),
        ("{ fallbackF: items { asNode { id } } }", None),
    ],
)
async def test_unplannable_queries_fall_back(
    runs: list[object], query: str, variables: dict[str, Any] | None
) -> None:
    await assert_same(query, variables)
    assert runs == []
    assert _plans_for(query) == [None]


async def test_mutations_fall_back(runs: list[object]) -> None:
    await assert_same('mutation { fallbackMutation: rename(id: "1", name: "one") { id name shout } }')
    assert runs == []

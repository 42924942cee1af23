"""What compat.py works around: a finished execution leaves nothing for the cyclic GC."""

from __future__ import annotations

import gc
import weakref

import pytest

from tests.schema.execution.sample import PLANNED, Context


class _Root:
    """A root value to watch: the executor refers to it for as long as the executor lives."""


@pytest.mark.parametrize(
    "query",
    [
        "{ items { id } }",  # planned, answered synchronously
        "{ items { id loaded asyncLoaded child { loaded } } }",  # planned, with awaitables
        '{ __type(name: "Item") { name } }',  # falls back to graphql-core
        'mutation { rename(id: "4", name: "four") { id } }',  # falls back to graphql-core
    ],
)
async def test_a_finished_execution_leaves_no_reference_cycle(query: str) -> None:
    gc.collect()
    gc.disable()
    try:
        root = _Root()
        alive = weakref.ref(root)
        result = await PLANNED.execute(query, root_value=root, context_value=Context())
        assert result.errors is None
        del root, result
        assert alive() is None  # freed on the spot, not left for the cyclic GC
    finally:
        gc.enable()

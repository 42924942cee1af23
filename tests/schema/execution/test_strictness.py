"""The planned executor is never less strict than graphql-core: permissions, field extensions and
directives run, and one schema's plan never answers for another."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from strawberry.extensions import FieldExtension, ParserCache
from strawberry.permission import BasePermission
from strawberry.schema_directive import Location

from homefeed.schema.execution import PlannedExecutionContext
from homefeed.schema.execution.compat import default_attribute
from homefeed.schema.execution.plan import Plan, plans_for
from tests.schema.execution.sample import errors_of


class Deny(BasePermission):
    message = "denied"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


class Shout(FieldExtension):
    def resolve(self, next_: Any, source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        return str(next_(source, info, **kwargs)).upper()


@strawberry.schema_directive(locations=[Location.FIELD_DEFINITION])
class Tagged:
    name: str


@strawberry.type
class Secret:
    plain: str
    hidden: str = strawberry.field(permission_classes=[Deny])
    maybe_hidden: str | None = strawberry.field(permission_classes=[Deny])
    shouted: str = strawberry.field(extensions=[Shout()])
    tagged: str = strawberry.field(directives=[Tagged(name="t")])


@strawberry.type
class ProbeQuery:
    @strawberry.field
    def secret(self) -> Secret:
        return Secret(plain="p", hidden="h", maybe_hidden="m", shouted="s", tagged="x")

    @strawberry.field
    async def async_secret(self) -> Secret | None:
        return Secret(plain="p", hidden="h", maybe_hidden="m", shouted="s", tagged="x")


PROBE_PLANNED = strawberry.Schema(query=ProbeQuery, execution_context_class=PlannedExecutionContext)
PROBE_PLAIN = strawberry.Schema(query=ProbeQuery)


@pytest.mark.parametrize(
    ("query", "data"),
    [
        ("{ secret { plain hidden } }", None),
        ("{ secret { plain maybeHidden } }", {"secret": {"plain": "p", "maybeHidden": None}}),
        ("{ secret { plain shouted tagged } }", {"secret": {"plain": "p", "shouted": "S", "tagged": "x"}}),
        ("{ asyncSecret { hidden } }", {"asyncSecret": None}),
        ("{ asyncSecret { shouted maybeHidden } }", {"asyncSecret": {"shouted": "S", "maybeHidden": None}}),
    ],
)
async def test_probe_schema_permissions_and_extensions_run(
    planned_runs: list[Plan], query: str, data: dict[str, Any] | None
) -> None:
    planned = await PROBE_PLANNED.execute(query)
    plain = await PROBE_PLAIN.execute(query)
    assert (planned.data, errors_of(planned)) == (plain.data, errors_of(plain))
    assert planned.data == data
    denied = "idden" in query
    assert [m for m, _, _ in errors_of(planned)] == (["denied"] if denied else [])
    assert len(planned_runs) == 1  # through the plan, not graphql-core's fallback


def test_only_the_basic_resolver_is_read_as_an_attribute() -> None:
    """The fast path stays for plain fields, and is refused for any field that does more."""
    secret = PROBE_PLANNED._schema.type_map["Secret"]
    fields = secret.fields  # type: ignore[attr-defined]
    assert default_attribute(fields["plain"]) == "plain"
    for name in ("hidden", "maybeHidden", "shouted", "tagged"):
        assert default_attribute(fields[name]) is None, name
    # Strawberry marks the wrapping resolver `_is_default` too: that is not evidence enough.
    assert getattr(fields["hidden"].resolve, "_is_default", False)


@strawberry.type
class QueryA:
    value: str = "from A"


@strawberry.type
class QueryB:
    @strawberry.field
    def value(self) -> str:
        return "from B"


async def test_plan_cache_belongs_to_one_schema() -> None:
    """Two schemas, one document (the parser cache hands both the same node): each its own plan."""
    schemas = [
        strawberry.Schema(
            query=query,
            execution_context_class=PlannedExecutionContext,
            extensions=[lambda: ParserCache(maxsize=64)],
        )
        for query in (QueryA, QueryB)
    ]
    document = "{ value probeCacheMarker: value }"
    for _ in range(2):
        results = [
            await schema.execute(document, root_value=query())
            for schema, query in zip(schemas, (QueryA, QueryB), strict=True)
        ]
        assert [r.errors for r in results] == [None, None]
        assert [r.data for r in results] == [
            {"value": "from A", "probeCacheMarker": "from A"},
            {"value": "from B", "probeCacheMarker": "from B"},
        ]
    operations = [
        [
            op
            for op, _ in plans_for(schema._schema).entries()
            if op.loc and "probeCacheMarker" in op.loc.source.body
        ]
        for schema in schemas
    ]
    assert operations[0] and operations[0][0] is operations[1][0]  # really one document node

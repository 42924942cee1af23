"""Resolver functions called without Strawberry's wrapper (compat.direct_resolver): only where the
wrapper would do nothing but the call, and then giving what the wrapper gives."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.permission import BasePermission

from homefeed.schema.execution import compat
from homefeed.schema.execution.compiled import CompiledExecutionContext


@strawberry.enum
class Shade(Enum):
    DARK = "dark"
    LIGHT = "light"


@strawberry.input
class Range:
    first: int


class Never(BasePermission):
    message = "never"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Query:
    @strawberry.field
    def plain(self) -> str:
        return "plain"

    @strawberry.field
    def args(self, first: int | None = 2, shade: Shade | None = Shade.DARK, text_value: str = "x") -> str:
        return f"{first} {shade} {text_value}"

    @strawberry.field
    async def later(self, info: strawberry.Info, first: int = 1) -> str:
        return f"{first} {type(info).__name__}"

    @strawberry.field
    def parented(self, root: strawberry.Parent[Any]) -> str:
        return f"parent {root!r}"

    @strawberry.field(permission_classes=[Never])  # type: ignore[untyped-decorator]
    def guarded(self) -> str:
        return "guarded"

    @strawberry.field
    def ranged(self, range: Range) -> int:
        return range.first

    @strawberry.field
    def global_id(self, id: strawberry.relay.GlobalID) -> str:
        return id.node_id


def _schema(**kwargs: Any) -> strawberry.Schema:
    return strawberry.Schema(query=Query, **kwargs)


def _definition(schema: strawberry.Schema, name: str) -> Any:
    query_type = schema._schema.query_type
    assert query_type is not None
    return query_type.fields[name]


@pytest.mark.parametrize("name", ["guarded", "ranged", "globalId"])
def test_a_wrapper_doing_more_than_the_call_is_kept(name: str) -> None:
    # Permissions run in the wrapper; an input type or a GlobalID is converted by it.
    schema = _schema()
    assert compat.direct_resolver(_definition(schema, name), schema._schema) is None


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("plain", {}),
        ("args", {"first": 3, "shade": Shade.LIGHT, "textValue": "y"}),
        ("args", {"first": None}),
        ("parented", {}),
    ],
)
def test_the_direct_call_gives_what_the_wrapper_gives(name: str, kwargs: dict[str, Any]) -> None:
    schema = _schema()
    definition = _definition(schema, name)
    direct = compat.direct_resolver(definition, schema._schema)
    assert direct is not None
    call, needs_info = direct
    assert not needs_info
    # These resolvers read no info: Strawberry's wrapper builds one around whatever it is given.
    assert call("the root", None, **kwargs) == definition.resolve("the root", None, **kwargs)


async def test_a_resolver_reading_info_gets_strawberrys_info() -> None:
    schema = _schema()
    direct = compat.direct_resolver(_definition(schema, "later"), schema._schema)
    assert direct is not None
    call, needs_info = direct
    assert needs_info
    assert await call(None, object(), first=4) == "4 Info"


async def test_compiled_code_calls_the_function_not_the_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = _schema(execution_context_class=CompiledExecutionContext)

    def wrapper(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("Strawberry's wrapper was called")

    for name in ("plain", "args", "later", "parented"):
        monkeypatch.setattr(_definition(schema, name), "resolve", wrapper)
    result = await schema.execute("{ plain args(first: 5, shade: LIGHT) later parented }")
    assert result.errors is None
    assert result.data == {
        "plain": "plain",
        "args": "5 Shade.LIGHT x",
        "later": "1 Info",
        "parented": "parent None",
    }
    # A guarded field still goes through the wrapper, which refuses it.
    guarded = await schema.execute("{ guarded }")
    assert guarded.errors is not None and guarded.errors[0].message == "never"

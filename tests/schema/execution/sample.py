"""A small self-contained schema, executed by both executors, and their comparison.

Every query runs twice: once through `PlannedExecutionContext`, once through Strawberry's own
executor (graphql-core's), over the same types and the same data. Data must be equal, and errors
equal as (message, path, locations), in any order. Resolvers take a fixed number of event-loop
turns, so both executors are deterministic.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NewType, NoReturn, TypeVar, cast

import strawberry
from aiodataloader import DataLoader
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult

from homefeed.schema.execution import PlannedExecutionContext
from homefeed.schema.execution.compiled import CompiledExecutionContext

# ---------------------------------------------------------------------------------------------
# The test schema


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


Even = NewType("Even", int)


def _serialize_even(value: Any) -> int:
    if not isinstance(value, int) or value % 2:
        raise ValueError(f"not even: {value!r}")
    return value


def _parse_even(value: Any) -> Even:
    return Even(_serialize_even(value))


CONFIG = StrawberryConfig(
    scalar_map={Even: strawberry.scalar(name="Even", serialize=_serialize_even, parse_value=_parse_even)}
)

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


T = TypeVar("T")


async def _later(value: T, ticks: int = 1) -> T:
    """The value after a few turns of the event loop."""
    for _ in range(ticks):
        await asyncio.sleep(0)
    return value


async def _later_raise(message: str, ticks: int = 1) -> NoReturn:
    await _later(None, ticks)
    raise ValueError(message)


async def _stream(values: list[Any]) -> AsyncIterator[Any]:
    for value in values:
        await asyncio.sleep(0)
        yield value


@dataclass
class Context:
    """Per-request context: a DataLoader counting its batches."""

    # Without its cache, the loader gives each load a future of its own (see
    # `test_shared_loader_future_survives_a_failure`).
    cache: bool = True
    batches: list[list[int]] = field(default_factory=list)
    loader: DataLoader[int, str] = field(init=False)

    def __post_init__(self) -> None:
        async def load(keys: list[int]) -> list[str]:
            self.batches.append(list(keys))
            return [f"loaded-{key}" for key in keys]

        self.loader = DataLoader(load, cache=self.cache)


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class Item(Node):
    name: str
    rank: int
    color: Color
    created: datetime
    note: str | None = None
    tags: list[str] = strawberry.field(default_factory=list)
    # Not exposed: whether the item's checked fields fail.
    bad: strawberry.Private[bool] = False

    @strawberry.field
    def label(self, prefix: str = "#", times: int = 1) -> str:
        return f"{prefix}{self.name}" * times

    @strawberry.field
    async def shout(self, suffix: str = "!") -> str:
        return await _later(self.name.upper() + suffix)

    @strawberry.field
    def later_name(self) -> str:
        """A sync resolver returning an awaitable."""
        return cast(str, _later(self.name, ticks=2))

    @strawberry.field
    def fails(self) -> str | None:
        raise ValueError(f"fails {self.id}")

    @strawberry.field
    async def async_fails(self) -> str | None:
        return await _later_raise(f"async fails {self.id}")

    @strawberry.field
    def check(self) -> str:
        if self.bad:
            raise ValueError(f"check {self.id}")
        return self.name

    @strawberry.field
    async def async_check(self) -> str:
        if self.bad:
            return await _later_raise(f"async check {self.id}", ticks=3)
        return await _later(self.name)

    @strawberry.field
    def nullish(self) -> str:
        return cast(str, None if self.bad else self.name)

    @strawberry.field
    async def async_nullish(self) -> str:
        return cast(str, await _later(None if self.bad else self.name))

    @strawberry.field
    def bad_int(self) -> int:
        return cast(int, "not a number")

    @strawberry.field
    def even(self) -> Even | None:
        return Even(self.rank)

    @strawberry.field
    def required_even(self) -> Even:
        return Even(self.rank)

    @strawberry.field
    def shade(self) -> Color | None:
        return cast(Color, "purple") if self.bad else self.color

    @strawberry.field
    def scores(self) -> list[int | None]:
        return [self.rank, None, self.rank * 2]

    @strawberry.field
    def required_scores(self) -> list[int] | None:
        return cast(list[int], [self.rank, None] if self.bad else [self.rank])

    @strawberry.field
    def not_a_list(self) -> list[str] | None:
        return cast(list[str], 5)

    @strawberry.field
    def child(self) -> Item | None:
        return ITEMS.get(str(int(self.id) + 1))

    @strawberry.field
    async def async_child(self) -> Item | None:
        return await _later(ITEMS.get(str(int(self.id) + 1)))

    @strawberry.field
    def required_child(self) -> Item:
        return cast(Item, ITEMS.get(str(int(self.id) + 1)))

    @strawberry.field
    def friends(self) -> list[Item]:
        return [item for item in ITEMS.values() if item.id != self.id][:3]

    @strawberry.field
    def maybe_friends(self) -> list[Item | None] | None:
        return [ITEMS.get(str(int(self.id) + step)) for step in (-1, 1, 2)]

    @strawberry.field
    async def async_friends(self) -> list[Item | None]:
        return await _later([ITEMS.get(str(int(self.id) + step)) for step in (1, 2)])

    @strawberry.field
    def lazy_friends(self) -> list[Item | None]:
        """A list of awaitables, one per item."""
        return cast(list[Item | None], [_later(ITEMS.get(str(int(self.id) + s)), ticks=s) for s in (1, 2)])

    @strawberry.field
    def streamed_tags(self) -> list[str] | None:
        """An async iterable for a list."""
        return cast(list[str], _stream(self.tags))

    @strawberry.field
    def impostor(self) -> Item | None:
        """Not an Item: refused by Strawberry's `is_type_of`."""
        return cast(Item, {"id": self.id})

    @strawberry.field
    def as_node(self) -> Node:
        return self

    @strawberry.field
    def loaded(self, info: strawberry.Info[Context, None]) -> str:
        """A DataLoader future, returned by a sync resolver."""
        return cast(str, info.context.loader.load(int(self.id)))

    @strawberry.field
    async def async_loaded(self, info: strawberry.Info[Context, None]) -> str:
        return await info.context.loader.load(int(self.id) + 100)


def _items() -> dict[str, Item]:
    colors = list(Color)
    items = [
        Item(
            id=strawberry.ID(str(n)),
            name=f"item{n}",
            rank=n,
            color=colors[n % 3],
            created=EPOCH + timedelta(days=n, seconds=n),
            note=None if n % 2 else f"note {n}",
            tags=[f"t{k}" for k in range(n % 3)],
            bad=n == 3,
        )
        for n in range(1, 6)
    ]
    return {item.id: item for item in items}


ITEMS = _items()


def _select(first: int, offset: int) -> list[Item]:
    return list(ITEMS.values())[offset : offset + first]


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"hello {name}"

    @strawberry.field
    def now(self) -> datetime:
        return EPOCH

    @strawberry.field
    def items(self, first: int = 5, offset: int = 0) -> list[Item]:
        return _select(first, offset)

    @strawberry.field
    def maybe_items(self, first: int = 5, offset: int = 0) -> list[Item] | None:
        return _select(first, offset)

    @strawberry.field
    def nullable_items(self, first: int = 5, offset: int = 0) -> list[Item | None]:
        return [*_select(first, offset), None]

    @strawberry.field
    async def async_items(self, first: int = 5, offset: int = 0) -> list[Item | None] | None:
        return await _later([*_select(first, offset), None])

    @strawberry.field
    def item(self, id: strawberry.ID) -> Item | None:
        return ITEMS.get(id)

    @strawberry.field
    async def async_item(self, id: strawberry.ID) -> Item | None:
        return await _later(ITEMS.get(id))

    @strawberry.field
    def required_item(self, id: strawberry.ID) -> Item:
        return ITEMS[id]

    @strawberry.field
    def node(self, id: strawberry.ID) -> Node | None:
        return ITEMS.get(id)

    @strawberry.field
    def nodes(self) -> list[Node]:
        return [item for item in list(ITEMS.values())[:2]]


@strawberry.type
class Mutation:
    @strawberry.mutation
    def rename(self, id: strawberry.ID, name: str) -> Item:
        item = ITEMS[id]
        return Item(
            id=item.id, name=name, rank=item.rank, color=item.color, created=item.created, bad=item.bad
        )


PLANNED = strawberry.Schema(
    query=Query, mutation=Mutation, config=CONFIG, execution_context_class=PlannedExecutionContext
)
PLAIN = strawberry.Schema(query=Query, mutation=Mutation, config=CONFIG)
COMPILED = strawberry.Schema(
    query=Query, mutation=Mutation, config=CONFIG, execution_context_class=CompiledExecutionContext
)


# ---------------------------------------------------------------------------------------------
# Running and comparing

ErrorKey = tuple[str, list[str | int] | None, list[tuple[int, int]] | None]


def errors_of(result: ExecutionResult) -> list[ErrorKey]:
    keys: list[ErrorKey] = [
        (
            error.message,
            None if error.path is None else list(error.path),
            None if error.locations is None else [(loc.line, loc.column) for loc in error.locations],
        )
        for error in result.errors or []
    ]
    return sorted(keys, key=repr)


async def _run(
    schema: strawberry.Schema, query: str, variables: dict[str, Any] | None = None
) -> tuple[Any, list[ErrorKey]]:
    result = await schema.execute(query, variable_values=variables, context_value=Context())
    return result.data, errors_of(result)


async def assert_same(query: str, variables: dict[str, Any] | None = None) -> tuple[Any, list[ErrorKey]]:
    """The three executors (planned, compiled, graphql-core's) give the same data and errors;
    returns them."""
    planned = await _run(PLANNED, query, variables)
    compiled = await _run(COMPILED, query, variables)
    plain = await _run(PLAIN, query, variables)
    assert planned == plain, f"planned: {planned}\nplain: {plain}"
    assert compiled == plain, f"compiled: {compiled}\nplain: {plain}"
    return planned

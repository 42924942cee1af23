"""The planned executor answers exactly as graphql-core does, on a small self-contained schema.

Every query runs twice: once through `PlannedExecutionContext`, once through Strawberry's own
executor (graphql-core's), over the same types and the same data. Data must be equal, and errors
equal as (message, path, locations), in any order. Resolvers take a fixed number of event-loop
turns, so both executors are deterministic.

Two known differences are kept as strict xfails: async iterables for lists, and which errors
below a nulled place are reported when they settle in a different order (the planned executor
settles a whole pass of awaitables before completing any of them).
"""

from __future__ import annotations

import asyncio
import enum
import gc
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NewType, NoReturn, TypeVar, cast

import pytest
import strawberry
from aiodataloader import DataLoader
from hypothesis import given
from hypothesis import strategies as st
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult

from homefeed.schema import execution
from homefeed.schema.execution import PlannedExecutionContext

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


# ---------------------------------------------------------------------------------------------
# Running and comparing

ErrorKey = tuple[str, list[str | int] | None, list[tuple[int, int]] | None]


def _errors(result: ExecutionResult) -> list[ErrorKey]:
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
    return result.data, _errors(result)


async def assert_same(query: str, variables: dict[str, Any] | None = None) -> tuple[Any, list[ErrorKey]]:
    """Both executors give the same data and errors; returns them."""
    planned = await _run(PLANNED, query, variables)
    plain = await _run(PLAIN, query, variables)
    assert planned == plain, f"planned: {planned}\nplain: {plain}"
    return planned


ITEM_FIELDS = """
  id name rank color created note tags label label2: label(prefix: "~", times: 2)
  shout laterName even shade scores loaded asyncLoaded __typename
"""

# (name, query, variables)
CASES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("scalars", '{ hello now hello2: hello(name: "you") }', None),
    ("attributes", "{ items { id name rank color created note tags } }", None),
    ("sync resolvers with arguments", '{ items { label l2: label(prefix: "*") l3: label(times: 3) } }', None),
    ("async resolvers", '{ items { shout s2: shout(suffix: "?") } }', None),
    ("sync resolver returning an awaitable", "{ items { laterName } }", None),
    ("everything on an item", f"{{ items {{ {ITEM_FIELDS} }} }}", None),
    (
        "variables",
        "query($n: Int, $p: String!, $o: Int = 1) { items(first: $n, offset: $o) { label(prefix: $p) } }",
        {"n": 2, "p": ">"},
    ),
    ("variables left to their defaults", "query($n: Int = 2) { items(first: $n) { id } }", {}),
    ("variable for an ID", "query($id: ID!) { item(id: $id) { id name } }", {"id": "4"}),
    ("missing item", '{ item(id: "99") { id } asyncItem(id: "99") { id } }', None),
    ("nested objects", "{ items(first: 2) { child { name child { name child { id } } } } }", None),
    ("async nested objects", "{ items(first: 3) { asyncChild { name asyncChild { shout } } } }", None),
    ("end of the chain", '{ item(id: "5") { child { id } requiredChild { id } } }', None),
    ("required child missing nulls the item", '{ item(id: "5") { id requiredChild { id } } }', None),
    ("required item missing nulls data", '{ hello requiredItem(id: "99") { id } }', None),
    ("lists of objects", "{ items(first: 2) { friends { id name } } }", None),
    ("nullable items", "{ nullableItems(first: 2) { id } maybeItems(first: 1) { id } }", None),
    ("async lists", "{ asyncItems(first: 2) { id asyncFriends { id shout } } }", None),
    ("lists of awaitables", "{ items(first: 4) { lazyFriends { id laterName } } }", None),
    ("maybe friends", "{ items(first: 5) { maybeFriends { id } } }", None),
    ("nullable scalar items", "{ items(first: 2) { scores } }", None),
    ("non-null scalar items", "{ items { requiredScores } }", None),
    ("not a list", "{ items(first: 1) { notAList } }", None),
    ("nullable field raises", "{ items(first: 2) { id fails } }", None),
    ("nullable async field raises", "{ items(first: 2) { id asyncFails } }", None),
    ("leaf coercion fails", '{ item(id: "1") { id badInt } }', None),
    ("custom scalar coercion fails", "{ items { id even } }", None),
    ("custom scalar non-null coercion fails", "{ nullableItems { id requiredEven } }", None),
    ("enum coercion fails", "{ items { id shade } }", None),
    # Null propagation: non-null fields of item 3 fail.
    ("non-null raises in non-null list: data null", "{ hello items { id check } }", None),
    ("non-null raises in nullable list", "{ hello maybeItems { id check } }", None),
    ("non-null raises in list of nullable items", "{ nullableItems { id check } }", None),
    ("non-null async raises in non-null list: data null", "{ hello items { id asyncCheck } }", None),
    ("non-null async raises in nullable list", "{ hello maybeItems { id asyncCheck } }", None),
    ("non-null async raises, nullable items", "{ nullableItems { id asyncCheck } }", None),
    ("non-null returns None", "{ nullableItems { id nullish } }", None),
    ("non-null async returns None", "{ nullableItems { id asyncNullish } }", None),
    ("non-null returns None, async list", "{ asyncItems { id asyncNullish check } }", None),
    ("nested propagation", '{ item(id: "2") { id child { id check } } }', None),
    ("nested propagation through non-null", '{ item(id: "2") { id requiredChild { id check } } }', None),
    (
        "nested async propagation through non-null",
        '{ item(id: "1") { id requiredChild { requiredChild { id asyncCheck } } } }',
        None,
    ),
    ("propagation in lists of awaitables", "{ items(first: 2) { lazyFriends { id asyncCheck } } }", None),
    ("propagation in nullable friends", "{ items(first: 5) { id maybeFriends { id check } } }", None),
    ("propagation in async friends", "{ asyncItems { id asyncFriends { id asyncNullish } } }", None),
    ("propagation to data after await", '{ hello requiredItem(id: "3") { id asyncCheck } }', None),
    ("propagation to data, sync", '{ hello requiredItem(id: "3") { id nullish } }', None),
    ("several failures under one nulled parent", '{ item(id: "3") { id check nullish } }', None),
    (
        "sync failure beside pending async failures",
        '{ item(id: "3") { asyncFails asyncCheck shout check } }',
        None,
    ),
    (
        "async failure beside nullable async failures",
        '{ item(id: "3") { fails asyncFails asyncCheck shout } }',
        None,
    ),
    ("first async failure wins", '{ item(id: "3") { asyncCheck asyncNullish } }', None),
    ("is_type_of refuses", '{ item(id: "1") { id impostor { id } } }', None),
    ("errors beside a nulled list", "{ nullableItems { asyncFails asyncNullish } }", None),
    # Interfaces: a fallback to graphql-core.
    ("interface field", '{ node(id: "2") { id __typename ... on Item { name shout } } }', None),
    ("interface list", "{ nodes { id } items(first: 1) { asNode { id __typename } } }", None),
    ("__typename", "{ __typename items(first: 2) { __typename t: __typename } }", None),
    (
        "aliases",
        '{ a: item(id: "1") { x: name y: name z: label(prefix: "-") } b: item(id: "2") { x: id } }',
        None,
    ),
    (
        "named fragments",
        """
        query { items(first: 3) { ...ItemBits child { ...ItemBits } } }
        fragment ItemBits on Item { id name ...More }
        fragment More on Item { shout tags }
        """,
        None,
    ),
    ("inline fragments", "{ items(first: 2) { ... on Item { id } ... { name } ... on Node { id } } }", None),
    (
        "merged selections",
        """
        { items(first: 3) {
            child { id }
            child { name shout }
            ... on Item { child { child { id } } }
        } }
        """,
        None,
    ),
    ("DataLoader", "{ items { loaded asyncLoaded child { loaded } } }", None),
    # Directives: a fallback to graphql-core.
    (
        "skip and include",
        "query($yes: Boolean!) { items { id name @skip(if: $yes) shout @include(if: $yes) } }",
        {"yes": True},
    ),
    (
        "skip and include, the other way",
        "query($yes: Boolean!) { items { id name @skip(if: $yes) shout @include(if: $yes) } }",
        {"yes": False},
    ),
    ("mutation", 'mutation { rename(id: "2", name: "two") { id name label shout } }', None),
    ("mutation propagation", 'mutation { rename(id: "3", name: "three") { id check } }', None),
    ("introspection", '{ __type(name: "Item") { name fields { name } } }', None),
    ("schema introspection", "{ __schema { queryType { name } } }", None),
]


@pytest.mark.parametrize(("query", "variables"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_same_as_graphql_core(query: str, variables: dict[str, Any] | None) -> None:
    await assert_same(query, variables)


# Known differences, kept failing on purpose: if one goes away, the strict xfail says so.
@pytest.mark.xfail(strict=True, reason="the planned executor refuses async iterables for lists")
async def test_async_iterable_for_a_list() -> None:
    """graphql-core completes a list from an async iterable; the plan wants an Iterable."""
    await assert_same("{ items { id streamedTags } }")


@pytest.mark.xfail(strict=True, reason="errors of a later pass are dropped once an ancestor is nulled")
async def test_errors_settled_before_an_ancestor_is_nulled() -> None:
    """Which errors below a nulled place are reported depends on when they settle.

    graphql-core completes each subtree as soon as its awaitable settles: the `asyncFails` errors
    under `r1` (two ticks deep) are recorded before `asyncCheck` under `r0` fails (three ticks)
    and nulls the data. The planned executor settles a whole pass before starting the next: the
    data is nulled at the end of the first pass, and the second pass's errors are dropped.
    Both follow the rule "an error below a place already nulled is not reported"; they differ
    in the order in which awaitables settle.
    """
    await assert_same("{ r0: items { asyncCheck } r1: asyncItems { asyncFails } }")


async def test_execute_sync() -> None:
    """A query whose resolvers return no awaitable completes synchronously, as with graphql-core."""
    for query in ['{ hello item(id: "1") { id name label child { id } } }', '{ item(id: "3") { id check } }']:
        planned = PLANNED.execute_sync(query)
        plain = PLAIN.execute_sync(query)
        assert (planned.data, _errors(planned)) == (plain.data, _errors(plain))
        assert planned.data is not None


async def test_cases_exercise_errors_and_data() -> None:
    """The comparison is not vacuous: failures are reported, and propagate as the spec says."""
    data, errors = await assert_same("{ hello items { id check } }")
    assert data is None
    assert [(m, p) for m, p, _ in errors] == [("check 3", ["items", 2, "check"])]

    data, errors = await assert_same("{ nullableItems { id asyncCheck } }")
    assert [item and item["id"] for item in data["nullableItems"]] == ["1", "2", None, "4", "5", None]
    assert [(m, p) for m, p, _ in errors] == [("async check 3", ["nullableItems", 2, "asyncCheck"])]

    data, errors = await assert_same('{ item(id: "2") { id requiredChild { id nullish } } }')
    assert data == {"item": None}
    assert errors == [
        (
            "Cannot return null for non-nullable field Item.nullish.",
            ["item", "requiredChild", "nullish"],
            [(1, 41)],
        )
    ]


async def test_repeated_execution_uses_the_cached_plan() -> None:
    query = '{ items(first: 2) { id shout } item(id: "3") { check } }'
    first = await assert_same(query)
    for _ in range(3):
        assert await assert_same(query) == first


# ---------------------------------------------------------------------------------------------
# The plan path is taken, or not


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The plans executed by `_Run.execute` during the test."""
    seen: list[object] = []
    original = execution._Run.execute

    def spy(self: execution._Run, plan: execution._Plan) -> Any:
        seen.append(plan)
        return original(self, plan)

    monkeypatch.setattr(execution._Run, "execute", spy)
    yield seen


def _plans_for(query_fragment: str) -> list[object]:
    """The cached plans of operations whose source contains the fragment."""
    found: list[object] = []
    for operation, plan in PlannedExecutionContext._plans.values():
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


# ---------------------------------------------------------------------------------------------
# DataLoader batching


@pytest.mark.parametrize("schema", [PLANNED, PLAIN], ids=["planned", "plain"])
@pytest.mark.parametrize("field_name", ["loaded", "asyncLoaded"])
async def test_dataloader_batches_a_list(schema: strawberry.Schema, field_name: str) -> None:
    context = Context()
    result = await schema.execute(f"{{ items {{ id {field_name} }} }}", context_value=context)
    assert result.errors is None
    assert result.data is not None
    offset = 100 if field_name == "asyncLoaded" else 0
    assert [item[field_name] for item in result.data["items"]] == [
        f"loaded-{n + offset}" for n in range(1, 6)
    ]
    assert context.batches == [[n + offset for n in range(1, 6)]]


async def test_shared_loader_future_survives_a_failure() -> None:
    """A failure nulling the data does not cancel a DataLoader future other fields still await.

    graphql-core cancels the pending siblings of a failed non-null field. When one of them awaits a
    future the DataLoader's cache shares with another field, that future is cancelled, and the
    other field's `CancelledError` ends the whole request. The planned executor cancels nothing.
    """
    query = "{ items { asyncCheck asyncFriends { asyncChild { loaded } } } }"
    result = await PLANNED.execute(query, context_value=Context())
    assert result.data is None
    assert _errors(result) == [("async check 3", ["items", 2, "asyncCheck"], [(1, 11)])]
    with pytest.raises(asyncio.CancelledError):
        await PLAIN.execute(query, context_value=Context())
    # Without the loader's cache, the two executors agree.
    assert _errors(await PLAIN.execute(query, context_value=Context(cache=False))) == _errors(result)


async def test_dataloader_batches_across_levels_and_lists() -> None:
    """All loads met in one pass, at any depth, make one batch."""
    context = Context()
    query = '{ items { loaded friends { loaded } } item(id: "2") { child { loaded } } }'
    result = await PLANNED.execute(query, context_value=context)
    assert result.errors is None
    assert len(context.batches) == 1
    assert sorted(context.batches[0]) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------------------------
# Random selections


# Fields of Item by kind: leaves (with optional arguments), and objects or lists of objects.
LEAF_SELECTIONS = [
    "id",
    "name",
    "rank",
    "color",
    "created",
    "note",
    "tags",
    "label",
    'label(prefix: "@")',
    "label(times: 2)",
    "shout",
    "laterName",
    "fails",
    "asyncFails",
    "check",
    "asyncCheck",
    "nullish",
    "asyncNullish",
    "even",
    "requiredEven",
    "shade",
    "scores",
    "requiredScores",
    "loaded",
    "asyncLoaded",
    "__typename",
]
OBJECT_SELECTIONS = [
    "child",
    "asyncChild",
    "requiredChild",
    "friends",
    "maybeFriends",
    "asyncFriends",
    "lazyFriends",
]
ROOT_SELECTIONS = [
    "items",
    "items(first: 2, offset: 1)",
    "maybeItems",
    "nullableItems(first: 4)",
    "asyncItems",
    'item(id: "3")',
    'asyncItem(id: "2")',
    'requiredItem(id: "1")',
]


def _selection(depth: int) -> st.SearchStrategy[str]:
    """A selection set of Item: up to five fields, some aliased, some repeated (and so merged)."""
    leaf = st.sampled_from(LEAF_SELECTIONS)
    if depth == 0:
        field_strategy: st.SearchStrategy[str] = leaf
    else:
        nested = st.tuples(st.sampled_from(OBJECT_SELECTIONS), _selection(depth - 1)).map(
            lambda pair: f"{pair[0]} {{ {pair[1]} }}"
        )
        field_strategy = st.one_of(leaf, nested)
    fields = st.lists(st.tuples(st.booleans(), field_strategy), min_size=1, max_size=5)
    # Fields with arguments are always aliased apart: selecting one name with different arguments
    # is a validation error, not an execution.
    return fields.map(
        lambda chosen: " ".join(
            f"a{n}: {selected}" if aliased or "(" in selected else selected
            for n, (aliased, selected) in enumerate(chosen)
        )
    )


@st.composite
def _queries(draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    roots = draw(st.lists(st.sampled_from(ROOT_SELECTIONS), min_size=1, max_size=3, unique=True))
    parts = [f"r{n}: {root} {{ {draw(_selection(2))} }}" for n, root in enumerate(roots)]
    return "{ " + " ".join(parts) + " }"


def _nulled_place(data: Any, path: list[str | int] | None) -> tuple[str | int, ...] | None:
    """The place above an error's path that the response has nulled, if any."""
    if path is None:
        return None
    current = data
    for depth, key in enumerate(path):
        if current is None:
            return tuple(path[:depth])
        current = current[key]
    return None


def _compared(result: ExecutionResult) -> tuple[Any, list[ErrorKey], set[tuple[str | int, ...]]]:
    """The data; the errors outside nulled places; the nulled places (with at least one error)."""
    outside: list[ErrorKey] = []
    nulled: set[tuple[str | int, ...]] = set()
    for key in _errors(result):
        place = _nulled_place(result.data, key[1])
        if place is None:
            outside.append(key)
        else:
            nulled.add(place)
    return result.data, outside, nulled


@given(_queries())
async def test_random_selections(query: str) -> None:
    """Random selections give the same data and errors.

    Errors below a nulled place are compared as "at least one explains it": which of them are
    reported depends on the order awaitables settle in (see the xfail above).
    """
    planned = _compared(await PLANNED.execute(query, context_value=Context(cache=False)))
    plain = _compared(await PLAIN.execute(query, context_value=Context(cache=False)))
    assert planned == plain, f"{query}\nplanned: {planned}\nplain: {plain}"


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

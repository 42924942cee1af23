"""Planned execution of validated queries: graphql-core's semantics without its per-field machinery.

graphql-core executes a document by interpreting it: for every field of every object of every
list item it collects the selection again, builds a resolve info, wraps awaitables and walks
the return type's wrappers. For a home-feed page that is about 250 fields, and it was three
quarters of a request's CPU (py-spy; README, "bench read"). Here, the first execution of an
operation compiles it into a plan: per object type, its response keys with their field
definitions, resolvers and completions (leaf coercion, list, object, non-null), collected
once with graphql-core's own `collect_fields`. Later executions walk the plan.

What does not change: resolvers (Strawberry's, with its argument conversion and `Info`),
argument and variable coercion (graphql-core's functions), leaf coercion, error locations and
paths, null propagation to the nearest nullable parent, and DataLoader batching: awaitables
met during a pass are gathered together, then their subtrees completed in the next pass.

Anything a plan does not cover runs through graphql-core unchanged: mutations and
subscriptions, directives (@skip and @include depend on variables), introspection of the
schema, interface and union fields, custom `is_type_of`, resolve middleware, abort signals
and execution hooks.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from graphql import (
    DirectiveNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    Node,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    located_error,
)
from graphql.execution.collect_fields import FieldDetails, collect_fields, collect_subfields
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, inspect, is_iterable
from graphql.type import is_abstract_type, is_leaf_type, is_list_type, is_non_null_type, is_object_type
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# Compiled plans, by operation node: the parser cache hands out the same node for the same
# document, so an operation is compiled once per process while it stays in that cache.
MAX_PLANS = 512


class _Unplannable(Exception):
    """The operation uses something only graphql-core executes."""


class _Null(Exception):
    """A non-null position failed (its error is already recorded): null the nearest nullable parent."""


# What completing a value of one output type does.
@dataclass(slots=True)
class _Leaf:
    type_: GraphQLLeafType


@dataclass(slots=True)
class _List:
    item: _Completion
    item_non_null: bool


@dataclass(slots=True)
class _Object:
    type_: GraphQLObjectType
    is_type_of: Callable[[Any, Any], Any] | None
    fields: list[_Field] = field(default_factory=list)


_Completion = _Leaf | _List | _Object


@dataclass(slots=True)
class _Field:
    key: str
    name: str
    nodes: list[FieldNode]
    definition: GraphQLField
    parent: GraphQLObjectType
    non_null: bool
    completion: _Completion | None  # None: __typename
    # A field without a resolver: read the attribute directly (Strawberry's default resolver).
    attribute: str | None
    has_arguments: bool


@dataclass(slots=True)
class _Plan:
    root: _Object


# A place in the response that an error of a deferred completion may have to null: a dict and a
# key, or a list and an index, with the place's path (None: the data itself).
_Anchor = tuple[Any, Any, Path | None]


@dataclass(slots=True)
class _Deferred:
    awaitable: Awaitable[Any]
    field: _Field
    completion: _Completion | None
    non_null: bool
    path: Path
    info: Any
    container: Any
    key: Any
    anchor: _Anchor


def _finished(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("this execution has finished")


# What a finished executor holds in place of its async helpers (bound to itself, a cycle).
_FINISHED = GraphQLResolveInfoHelpers(gather=_finished, track=_finished)


class PlannedExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, running queries from a compiled plan when the operation allows one."""

    _plans: OrderedDict[int, tuple[OperationDefinitionNode, _Plan | None]] = OrderedDict()

    def execute_operation(self, serially: bool | None = None) -> Any:
        if self.operation.operation is OperationType.SUBSCRIPTION:
            return super().execute_operation(serially)
        if (
            self.operation.operation is not OperationType.QUERY
            or serially
            or self.abort_signal is not None
            or self.hooks is not None
            or not self.error_propagation
            or (self.middleware_manager is not None and self.middleware_manager.middlewares)
        ):
            return self._detached_after(super().execute_operation(serially))
        plan = self._plan()
        if plan is None:
            return self._detached_after(super().execute_operation(serially))
        return self._detached_after(_Run(self).execute(plan))

    def _detached_after(self, result: Any) -> Any:
        """The result, once the executor no longer refers to itself.

        graphql-core's executor holds its own bound methods (`async_helpers`): a reference
        cycle, so each request's executor, context and answer outlived the request until the
        cyclic GC found them. With the API's rare young collections (app.tune_gc) each one then
        freed about 1,500 requests' worth at once, stalling its process for about 20 ms (bench
        read: the p99). Dropped when the operation is done, everything goes on the spot.
        """
        if not self.is_awaitable(result):
            self.async_helpers = _FINISHED
            return result

        async def detached() -> Any:
            try:
                return await result
            finally:
                self.async_helpers = _FINISHED

        return detached()

    def _plan(self) -> _Plan | None:
        key = id(self.operation)
        cached = self._plans.get(key)
        if cached is not None and cached[0] is self.operation:
            self._plans.move_to_end(key)
            return cached[1]
        try:
            plan: _Plan | None = _Compiler(self).compile()
        except _Unplannable:
            plan = None
        self._plans[key] = (self.operation, plan)
        if len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return plan


class _Compiler:
    def __init__(self, executor: PlannedExecutionContext) -> None:
        self.ex = executor
        self.schema = executor.schema

    def compile(self) -> _Plan:
        ex = self.ex
        if _has_directives(ex.operation) or any(_has_directives(f) for f in ex.fragment_definitions.values()):
            raise _Unplannable("directives")
        root_type = self.schema.get_root_type(OperationType.QUERY)
        if root_type is None:
            raise _Unplannable("no query type")
        collected = collect_fields(self.schema, ex.fragments, ex.variable_values, root_type, ex.operation)
        root = _Object(root_type, None)
        root.fields = self._fields(root_type, collected.grouped_field_set)
        return _Plan(root)

    def _fields(self, parent: GraphQLObjectType, grouped: dict[str, list[FieldDetails]]) -> list[_Field]:
        fields = []
        for key, details in grouped.items():
            if any(d.defer_usage is not None or d.fragment_variable_values is not None for d in details):
                raise _Unplannable("defer or fragment variables")
            nodes = [d.node for d in details]
            name = nodes[0].name.value
            if name in ("__schema", "__type"):
                raise _Unplannable("introspection")
            definition = self.schema.get_field(parent, name)
            if definition is None:  # validation would have refused it
                raise _Unplannable(f"unknown field {name}")
            if name == "__typename":
                completion: _Completion | None = None
            else:
                completion = self._completion(definition.type, details)
            fields.append(
                _Field(
                    key=key,
                    name=name,
                    nodes=nodes,
                    definition=definition,
                    parent=parent,
                    non_null=is_non_null_type(definition.type),
                    completion=completion,
                    attribute=_attribute(definition),
                    has_arguments=bool(definition.args),
                )
            )
        return fields

    def _completion(self, type_: GraphQLOutputType, details: list[FieldDetails]) -> _Completion:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if is_list_type(type_):
            assert isinstance(type_, GraphQLList)
            item = type_.of_type
            return _List(self._completion(item, details), is_non_null_type(item))
        if is_leaf_type(type_):
            return _Leaf(type_)
        if is_abstract_type(type_) or not is_object_type(type_):
            raise _Unplannable("abstract type")
        assert isinstance(type_, GraphQLObjectType)
        completion = _Object(type_, _is_type_of(type_))
        sub = collect_subfields(
            self.schema, self.ex.fragments, self.ex.variable_values, self.ex.operation, type_, details
        )
        completion.fields = self._fields(type_, sub.grouped_field_set)
        return completion


def _has_directives(node: Node) -> bool:
    """Whether any directive appears in a definition (a plan is shared by all variable values)."""
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, DirectiveNode):
            return True
        if isinstance(current, Node):
            stack.extend(getattr(current, k) for k in current.keys if k != "loc")
        elif isinstance(current, list | tuple):
            stack.extend(current)
    return False


def _attribute(definition: GraphQLField) -> str | None:
    """The attribute a field without resolver reads (Strawberry marks such resolvers `_is_default`)."""
    if not getattr(definition.resolve, "_is_default", False):
        return None
    strawberry_field = (definition.extensions or {}).get("strawberry-definition")
    name = getattr(strawberry_field, "python_name", None)
    if not isinstance(name, str) or getattr(strawberry_field, "default_resolver", getattr) is not getattr:
        return None
    return name


def _is_type_of(type_: GraphQLObjectType) -> Callable[[Any, Any], Any] | None:
    """The type's check on returned objects, when it needs no resolve info (Strawberry's own)."""
    if type_.is_type_of is None:
        return None
    definition = (type_.extensions or {}).get("strawberry-definition")
    if definition is None or getattr(definition, "is_type_of", None) is not None:
        raise _Unplannable("custom is_type_of")
    return type_.is_type_of


class _Run:
    """One execution of a plan."""

    def __init__(self, executor: PlannedExecutionContext) -> None:
        self.ex = executor
        self.is_awaitable = executor.is_awaitable
        self.errors: list[GraphQLError] = []
        # Places nulled by an error, as graphql-core's `CollectedErrors` keeps them: an error met
        # below one of them (by a completion still pending when it was nulled) is not reported.
        self.nulled: set[Path | None] = set()
        self.deferred: list[_Deferred] = []
        self.arguments: dict[int, dict[str, Any]] = {}

    def execute(self, plan: _Plan) -> ExecutionResult | Awaitable[ExecutionResult]:
        """The result; awaitable only when a resolver returned an awaitable (as graphql-core's)."""
        response: dict[str, Any] = {"data": None}
        try:
            response["data"] = self._object(plan.root, self.ex.root_value, None, (response, "data", None))
        except _Null:
            response["data"] = None
            self.nulled.add(None)
        if not self.deferred:
            return ExecutionResult(response["data"], self.errors or None)
        return self._execute_deferred(response)

    async def _execute_deferred(self, response: dict[str, Any]) -> ExecutionResult:
        while self.deferred:
            batch, self.deferred = self.deferred, []
            if len(batch) == 1:
                self._resume(batch[0], await _settle(batch[0].awaitable))
                continue
            # Completed in the order the awaitables settled, as graphql-core does: of two failures
            # that null the same place, the first one is reported. (A future's done callbacks run
            # in the order they were added, so all of these run before gather's last one.)
            futures = [asyncio.ensure_future(d.awaitable) for d in batch]
            order: list[int] = []
            for index, future in enumerate(futures):
                future.add_done_callback(partial(_settled, order, index))
            results = await asyncio.gather(*futures, return_exceptions=True)
            for index in order:
                self._resume(batch[index], results[index])
        return ExecutionResult(response["data"], self.errors or None)

    def _resume(self, item: _Deferred, result: Any) -> None:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # cancellation: not a field error
        if self._is_nulled(item.path):
            return  # an error nulled a place above it meanwhile
        try:
            value = self._complete(
                item.field, item.completion, item.non_null, item.path, item.info, result, item.anchor
            )
        except _Null:
            self._null_deferred(item)
            return
        except Exception as exc:
            self._error(exc, item.field, item.path)
            self._null_deferred(item)
            return
        item.container[item.key] = value

    def _null_deferred(self, item: _Deferred) -> None:
        """Null a failed deferred place, or the nearest nullable place above it."""
        container, key, path = item.anchor if item.non_null else (item.container, item.key, item.path)
        container[key] = None
        self.nulled.add(path)

    def _object(self, plan: _Object, source: Any, path: Path | None, anchor: _Anchor) -> dict[str, Any]:
        out: dict[str, Any] = {}
        typename = plan.type_.name
        for f in plan.fields:
            if f.completion is None:
                out[f.key] = typename
                continue
            f_path = Path(path, f.key, typename)
            f_anchor = anchor if f.non_null else (out, f.key, f_path)
            try:
                info = None
                if f.attribute is not None:
                    value = getattr(source, f.attribute)
                else:
                    info = self.ex.build_resolve_info(f.definition, f.nodes, f.parent, f_path)
                    args = self._arguments(f) if f.has_arguments else {}
                    value = f.definition.resolve(source, info, **args)  # type: ignore[misc]
                if self.is_awaitable(value):
                    out[f.key] = None
                    self.deferred.append(
                        _Deferred(value, f, f.completion, f.non_null, f_path, info, out, f.key, f_anchor)
                    )
                    continue
                out[f.key] = self._complete(f, f.completion, f.non_null, f_path, info, value, f_anchor)
            except _Null:
                if f.non_null:
                    raise
                out[f.key] = None
                self.nulled.add(f_path)
            except Exception as exc:
                self._error(exc, f, f_path)
                if f.non_null:
                    raise _Null from None
                out[f.key] = None
        return out

    def _arguments(self, f: _Field) -> dict[str, Any]:
        key = id(f)
        found = self.arguments.get(key)
        if found is None:
            found = get_argument_values(f.definition, f.nodes[0], self.ex.variable_values)
            self.arguments[key] = found
        return found

    def _complete(
        self,
        f: _Field,
        completion: _Completion | None,
        non_null: bool,
        path: Path,
        info: Any,
        value: Any,
        anchor: _Anchor,
    ) -> Any:
        """A resolved value completed to its type; raises for a non-null position left null."""
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            if non_null:
                raise TypeError(f"Cannot return null for non-nullable field {f.parent.name}.{f.name}.")
            return None
        if isinstance(completion, _Leaf):
            coerced = completion.type_.coerce_output_value(value)
            if coerced is Undefined or coerced is None:
                raise TypeError(
                    f"Expected `{inspect(completion.type_)}.coerce_output_value({inspect(value)})`"
                    f" to return non-nullable value, returned: {inspect(coerced)}"
                )
            return coerced
        if isinstance(completion, _Object):
            if completion.is_type_of is not None and not completion.is_type_of(value, info):
                raise GraphQLError(
                    f"Expected value of type '{completion.type_.name}' but got: {inspect(value)}.", f.nodes
                )
            return self._object(completion, value, path, anchor)
        assert isinstance(completion, _List)
        if not is_iterable(value):
            raise GraphQLError(
                f"Expected Iterable, but did not find one for field '{f.parent.name}.{f.name}'."
            )
        return self._list(f, completion, path, info, value, anchor)

    def _list(
        self, f: _Field, completion: _List, path: Path, info: Any, value: Any, anchor: _Anchor
    ) -> list[Any]:
        out: list[Any] = []
        item_completion = completion.item
        item_non_null = completion.item_non_null
        for index, item in enumerate(value):
            item_path = Path(path, index, None)
            item_anchor = anchor if item_non_null else (out, index, item_path)
            try:
                if self.is_awaitable(item):
                    out.append(None)
                    self.deferred.append(
                        _Deferred(
                            item, f, item_completion, item_non_null, item_path, info, out, index, item_anchor
                        )
                    )
                    continue
                out.append(
                    self._complete(f, item_completion, item_non_null, item_path, info, item, item_anchor)
                )
            except _Null:
                if item_non_null:
                    raise
                out.append(None)
                self.nulled.add(item_path)
            except Exception as exc:
                self._error(exc, f, item_path)
                if item_non_null:
                    raise _Null from None
                out.append(None)
        return out

    def _error(self, exc: Exception, f: _Field, path: Path) -> None:
        if self._is_nulled(path):
            return
        self.nulled.add(path)
        self.errors.append(located_error(exc, f.nodes, path.as_list()))

    def _is_nulled(self, start: Path) -> bool:
        """Whether an error nulled this place or one above it."""
        nulled = self.nulled
        if not nulled:
            return False
        path: Path | None = start
        while path is not None:
            if path in nulled:
                return True
            path = path.prev
        return None in nulled


async def _settle(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except Exception as exc:
        return exc


def _settled(order: list[int], index: int, _future: asyncio.Future[Any]) -> None:
    order.append(index)

"""Walking a plan at request time, and the executor that does it when the operation allows.

What a run keeps of graphql-core's semantics: resolvers (Strawberry's, with its argument
conversion and `Info`), argument and variable coercion (graphql-core's functions), leaf
coercion, error locations and paths, null propagation to the nearest nullable parent, and
DataLoader batching: awaitables met during a pass are gathered together, then their subtrees
completed in the next pass.

Anything a plan does not cover runs through graphql-core unchanged: mutations and
subscriptions, the operations plan.py refuses, resolve middleware, abort signals and execution
hooks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from graphql import ExecutionResult, GraphQLError, OperationType, Undefined, located_error

from homefeed.schema.execution import compat
from homefeed.schema.execution.compat import Path, inspect, is_iterable
from homefeed.schema.execution.plan import Completion, Leaf, ListOf, ObjectOf, Plan, PlannedField, Plans


class PlannedExecutionContext(compat.ExecutionContext):
    """Strawberry's executor, running queries from a compiled plan when the operation allows one."""

    plans: ClassVar[Plans] = Plans()

    def execute_operation(self, serially: bool | None = None) -> Any:
        if self.operation.operation is OperationType.SUBSCRIPTION:
            return super().execute_operation(serially)
        if (
            self.operation.operation is not OperationType.QUERY
            or serially
            or not compat.only_plain_execution(self)
        ):
            return compat.released_after(self, super().execute_operation(serially))
        plan = self.plans.for_operation(self)
        if plan is None:
            return compat.released_after(self, super().execute_operation(serially))
        return compat.released_after(self, Run(self).execute(plan))


class _Null(Exception):
    """A non-null position failed (its error is already recorded): null the nearest nullable parent."""


# A place in the response that an error of a deferred completion may have to null: a dict and a
# key, or a list and an index, with the place's path (None: the data itself).
_Anchor = tuple[Any, Any, Path | None]


@dataclass(slots=True)
class _Deferred:
    awaitable: Awaitable[Any]
    field: PlannedField
    completion: Completion | None
    non_null: bool
    path: Path
    info: Any
    container: Any
    key: Any
    anchor: _Anchor


class Run:
    """One execution of a plan."""

    def __init__(self, executor: PlannedExecutionContext) -> None:
        self.ex = executor
        self.is_awaitable = executor.is_awaitable
        self.resolve_info = compat.resolve_info_builder(executor)
        self.errors: list[GraphQLError] = []
        # Places nulled by an error, as graphql-core's `CollectedErrors` keeps them: an error met
        # below one of them (by a completion still pending when it was nulled) is not reported.
        self.nulled: set[Path | None] = set()
        self.deferred: list[_Deferred] = []
        self.arguments: dict[int, dict[str, Any]] = {}

    def execute(self, plan: Plan) -> ExecutionResult | Awaitable[ExecutionResult]:
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

    def _object(self, plan: ObjectOf, source: Any, path: Path | None, anchor: _Anchor) -> dict[str, Any]:
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
                    info = self.resolve_info(f.definition, f.nodes, f.parent, f_path)
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

    def _arguments(self, f: PlannedField) -> dict[str, Any]:
        key = id(f)
        found = self.arguments.get(key)
        if found is None:
            found = compat.argument_values(self.ex, f.definition, f.nodes[0])
            self.arguments[key] = found
        return found

    def _complete(
        self,
        f: PlannedField,
        completion: Completion | None,
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
        if isinstance(completion, Leaf):
            coerced = completion.type_.coerce_output_value(value)
            if coerced is Undefined or coerced is None:
                raise TypeError(
                    f"Expected `{inspect(completion.type_)}.coerce_output_value({inspect(value)})`"
                    f" to return non-nullable value, returned: {inspect(coerced)}"
                )
            return coerced
        if isinstance(completion, ObjectOf):
            if completion.is_type_of is not None and not completion.is_type_of(value, info):
                raise GraphQLError(
                    f"Expected value of type '{completion.type_.name}' but got: {inspect(value)}.", f.nodes
                )
            return self._object(completion, value, path, anchor)
        assert isinstance(completion, ListOf)
        if not is_iterable(value):
            raise GraphQLError(
                f"Expected Iterable, but did not find one for field '{f.parent.name}.{f.name}'."
            )
        return self._list(f, completion, path, info, value, anchor)

    def _list(
        self, f: PlannedField, completion: ListOf, path: Path, info: Any, value: Any, anchor: _Anchor
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

    def _error(self, exc: Exception, f: PlannedField, path: Path) -> None:
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

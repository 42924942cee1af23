"""Walking a plan at request time, and the executor that does it when the operation allows.

What a run keeps of graphql-core's semantics: resolvers (Strawberry's, with its argument
conversion and `Info`), argument and variable coercion (graphql-core's functions), leaf
coercion, error locations and paths, null propagation to the nearest nullable parent, and the
error list itself. For the last one the asynchronous part of a run has graphql-core's shape
exactly: a coroutine per awaited field or item, completed as soon as it settles, gathered per
object and per list with graphql-core's `gather_with_cancel` (one awaitable awaited directly),
and siblings of a synchronous failure settled in the background. Errors go to the executor's
own `CollectedErrors`. Awaitables therefore settle, fail and null places in the same order as
under graphql-core, and the same errors are reported; what the plan saves is the synchronous
work around them (field collection, type dispatch, resolve infos for plain attributes).

Anything a plan does not cover runs through graphql-core unchanged: mutations and
subscriptions, the operations plan.py refuses, resolve middleware, abort signals and execution
hooks; and, within a plan, a list field whose value is an async iterable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from types import CoroutineType
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    Undefined,
    located_error,
)
from graphql.execution.middleware import MiddlewareManager

from homefeed.schema.broadcast import Rendered
from homefeed.schema.execution import compat
from homefeed.schema.execution.compat import Path, inspect, is_iterable
from homefeed.schema.execution.plan import (
    AbstractOf,
    Completion,
    Leaf,
    ListOf,
    ObjectOf,
    Plan,
    PlannedField,
    plans_for,
)
from homefeed.schema.execution.variables import KnownVariables


class PlannedExecutionContext(compat.ExecutionContext):
    """Strawberry's executor, running queries from a compiled plan when the operation allows one."""

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        field_resolver: Any = None,
        type_resolver: Any = None,
        subscribe_field_resolver: Any = None,
        max_coercion_errors: int = 50,
        enable_early_execution: bool = False,
        middleware: Any = None,
        is_awaitable: Any = None,
        is_async_iterable: Any = None,
        hide_suggestions: bool = False,
        abort_signal: Any = None,
        hooks: Any = None,
        **custom_args: Any,
    ) -> Any:
        """graphql-core's build; given the operation's known variables (a persisted document,
        persisted/fast.py, as `known`) and values they coerce plainly, without its generic coercion."""
        known: KnownVariables | None = custom_args.pop("known", None)
        kwargs = {
            "hide_suggestions": hide_suggestions,
            "abort_signal": abort_signal,
            "hooks": hooks,
            **custom_args,
        }
        if (
            known is not None
            and known.schema is schema
            and known.document is document
            and known.operation_name == operation_name
            and (middleware is None or isinstance(middleware, MiddlewareManager))
        ):
            values = known.coerce(raw_variable_values or {})
            if values is not None:
                return compat.executor_of(
                    cls,
                    schema,
                    known.operation,
                    known.fragment_definitions,
                    known.fragments,
                    values,
                    root_value,
                    context_value,
                    field_resolver,
                    type_resolver,
                    subscribe_field_resolver,
                    enable_early_execution,
                    middleware,
                    is_awaitable,
                    is_async_iterable,
                    **kwargs,
                )
        return super().build(
            schema,
            document,
            root_value,
            context_value,
            raw_variable_values,
            operation_name,
            field_resolver,
            type_resolver,
            subscribe_field_resolver,
            max_coercion_errors,
            enable_early_execution,
            middleware,
            is_awaitable,
            is_async_iterable,
            **kwargs,
        )

    def execute_operation(self, serially: bool | None = None) -> Any:
        if self.operation.operation is OperationType.SUBSCRIPTION:
            if isinstance(self.root_value, Rendered):
                return self.root_value.result()  # rendered once for many subscribers (broadcast.py)
            return super().execute_operation(serially)
        if (
            self.operation.operation is not OperationType.QUERY
            or serially
            or not compat.only_plain_execution(self)
        ):
            return compat.released_after(self, super().execute_operation(serially))
        plan = plans_for(self.schema).for_operation(self)
        if plan is None:
            return compat.released_after(self, super().execute_operation(serially))
        return compat.released_after(self, Run(self).execute(plan))


def _field_path(path: Path) -> Path:
    """The path of the field a (possibly nested) list item belongs to."""
    while path.typename is None and path.prev is not None:
        path = path.prev
    return path


class Run:
    """One execution of a plan."""

    __slots__ = ("arguments", "errors", "ex", "is_awaitable", "resolve_info")

    def __init__(self, executor: PlannedExecutionContext) -> None:
        self.ex = executor
        self.is_awaitable = executor.is_awaitable
        self.resolve_info = compat.resolve_info_builder(executor)
        self.errors = compat.collected_errors(executor)
        self.arguments: dict[int, dict[str, Any]] = {}

    def execute(self, plan: Plan) -> ExecutionResult | Awaitable[ExecutionResult]:
        """The result; awaitable only when a resolver returned an awaitable (as graphql-core's)."""
        try:
            data = self._object(plan.root, self.ex.root_value, None)
        except GraphQLError as error:
            self.errors.add(error, None)
            return self._response(None)
        if type(data) is CoroutineType:
            return self._await_data(data)
        return self._response(data)

    async def _await_data(self, data: Awaitable[dict[str, Any]]) -> ExecutionResult:
        try:
            completed = await data
        except GraphQLError as error:
            self.errors.add(error, None)
            return self._response(None)
        return self._response(completed)

    def _response(self, data: dict[str, Any] | None) -> ExecutionResult:
        return ExecutionResult(data, self.errors.errors or None)

    def _error(self, raw: Exception, f: PlannedField, non_null: bool, path: Path) -> None:
        """Record a failure at a nullable place; at a non-null one, raise it to the parent."""
        error = located_error(raw, f.nodes, path.as_list())
        if non_null:
            raise error
        self.errors.add(error, path)

    def _object(self, plan: ObjectOf, source: Any, path: Path | None) -> Any:
        """The object's fields: a dict, or a coroutine of it when some field is pending."""
        results: dict[str, Any] = {}
        pending: list[str] | None = None
        typename = plan.type_.name
        try:
            for f in plan.fields:
                if f.completion is None:
                    results[f.key] = typename
                    continue
                value = self._field(f, source, Path(path, f.key, typename))
                results[f.key] = value
                if type(value) is CoroutineType:
                    if pending is None:
                        pending = [f.key]
                    else:
                        pending.append(f.key)
        except Exception:
            if pending is not None:
                compat.settle_in_background(self.ex, [results[key] for key in pending])
            raise
        if pending is None:
            return results
        return self._object_pending(results, pending)

    async def _object_pending(self, results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
        if len(pending) == 1:
            key = pending[0]
            results[key] = await results[key]
        else:
            awaited = await compat.gather_with_cancel(*(results[key] for key in pending))
            results.update(zip(pending, awaited, strict=True))
        return results

    def _field(self, f: PlannedField, source: Any, path: Path) -> Any:
        info = None
        try:
            if f.attribute is not None:
                value = getattr(source, f.attribute)
            else:
                info = self.resolve_info(f.definition, f.nodes, f.parent, path)
                if f.has_arguments:
                    value = f.definition.resolve(source, info, **self._arguments(f))  # type: ignore[misc]
                else:
                    value = f.definition.resolve(source, info)  # type: ignore[misc]
            if self.is_awaitable(value):
                return self._await_value(f, f.completion, f.non_null, info, path, value)
            completed = self._complete(f, f.completion, f.non_null, info, path, value)
            if type(completed) is CoroutineType:
                return self._await_completed(f, f.non_null, path, completed)
            return completed
        except Exception as raw:
            self._error(raw, f, f.non_null, path)
            return None

    def _arguments(self, f: PlannedField) -> dict[str, Any]:
        key = id(f)
        found = self.arguments.get(key)
        if found is None:
            found = compat.argument_values(self.ex, f.definition, f.nodes[0])
            self.arguments[key] = found
        return found

    async def _await_value(
        self,
        f: PlannedField,
        completion: Completion | None,
        non_null: bool,
        info: Any,
        path: Path,
        value: Awaitable[Any],
    ) -> Any:
        """An awaitable field value or list item, completed as soon as it settles."""
        try:
            completed = self._complete(f, completion, non_null, info, path, await value)
            if type(completed) is CoroutineType:
                completed = await completed
        except Exception as raw:
            self._error(raw, f, non_null, path)
            return None
        return completed

    async def _await_completed(
        self, f: PlannedField, non_null: bool, path: Path, completed: Coroutine[Any, Any, Any]
    ) -> Any:
        try:
            return await completed
        except Exception as raw:
            self._error(raw, f, non_null, path)
            return None

    def _complete(
        self,
        f: PlannedField,
        completion: Completion | None,
        non_null: bool,
        info: Any,
        path: Path,
        value: Any,
    ) -> Any:
        """A resolved value completed to its type (a coroutine when some of it is pending);
        raises for a failure, including a non-null position left null."""
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            if non_null:
                raise TypeError(f"Cannot return null for non-nullable field {f.parent.name}.{f.name}.")
            return None
        if type(completion) is Leaf:
            coerced = completion.type_.coerce_output_value(value)
            if coerced is Undefined or coerced is None:
                raise TypeError(
                    f"Expected `{inspect(completion.type_)}.coerce_output_value({inspect(value)})`"
                    f" to return non-nullable value, returned: {inspect(coerced)}"
                )
            return coerced
        if type(completion) is ObjectOf:
            if completion.is_type_of is not None and not completion.is_type_of(value, info):
                raise GraphQLError(
                    f"Expected value of type '{completion.type_.name}' but got: {inspect(value)}.", f.nodes
                )
            return self._object(completion, value, path)
        if type(completion) is AbstractOf:
            if info is None:
                info = self.resolve_info(f.definition, f.nodes, f.parent, _field_path(path))
            return compat.complete_abstract(self.ex, completion.type_, f.details, info, path, value)
        assert isinstance(completion, ListOf)
        return self._list(f, completion, info, path, value)

    def _list(self, f: PlannedField, completion: ListOf, info: Any, path: Path, value: Any) -> Any:
        if type(value) is not list and compat.async_list(self.ex, value):
            if info is None:
                info = self.resolve_info(f.definition, f.nodes, f.parent, _field_path(path))
            return compat.complete_async_list(self.ex, completion.type_, f.details, info, path, value)
        if not is_iterable(value):
            raise GraphQLError(
                f"Expected Iterable, but did not find one for field '{f.parent.name}.{f.name}'."
            )
        out: list[Any] = []
        pending: list[int] | None = None
        item_completion = completion.item
        item_non_null = completion.item_non_null
        is_awaitable = self.is_awaitable
        items = iter(value)
        try:
            for index, item in enumerate(items):
                item_path = Path(path, index, None)
                if is_awaitable(item):
                    out.append(self._await_value(f, item_completion, item_non_null, info, item_path, item))
                elif not self._list_item(f, item_completion, item_non_null, info, item_path, item, out):
                    continue
                if pending is None:
                    pending = [index]
                else:
                    pending.append(index)
        except Exception:
            compat.settle_in_background(self.ex, [out[i] for i in pending or ()], items)
            raise
        if pending is None:
            return out
        return self._list_pending(out, pending)

    def _list_item(
        self,
        f: PlannedField,
        completion: Completion,
        non_null: bool,
        info: Any,
        path: Path,
        item: Any,
        out: list[Any],
    ) -> bool:
        """Append a completed item; whether it is still pending."""
        try:
            completed = self._complete(f, completion, non_null, info, path, item)
            if type(completed) is CoroutineType:
                out.append(self._await_completed(f, non_null, path, completed))
                return True
            out.append(completed)
        except Exception as raw:
            self._error(raw, f, non_null, path)
            out.append(None)
        return False

    async def _list_pending(self, out: list[Any], pending: list[int]) -> list[Any]:
        if len(pending) == 1:
            index = pending[0]
            out[index] = await out[index]
        else:
            awaited = await compat.gather_with_cancel(*(out[i] for i in pending))
            for index, completed in zip(pending, awaited, strict=True):
                out[index] = completed
        return out

"""Everything the planned executor needs of graphql-core's and Strawberry's internals, in one place.

The plan and its run use graphql-core's public API; what is not public (field collection,
argument values, the executor's attributes of this minor version, Strawberry's markers on its
fields and types) is reached through here, so a release that moves it breaks this module alone.
pyproject.toml pins graphql-core below its next minor release for the same reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    Undefined,
    VariableDefinitionNode,
    default_field_resolver,
    default_type_resolver,
)
from graphql.execution.collect_fields import FieldDetails, FragmentDetails, collect_fields, collect_subfields
from graphql.execution.executor import CollectedErrors, collect_iterator_awaitables
from graphql.execution.get_variable_signature import GraphQLVariableSignature, get_variable_signature
from graphql.execution.middleware import MiddlewareManager
from graphql.execution.values import VariableValues, VariableValueSource, get_argument_values
from graphql.pyutils import Path, inspect, is_iterable
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.relay.types import GlobalID
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.arguments import _is_leaf_type
from strawberry.types.base import StrawberryMaybe, StrawberryOptional

__all__ = [
    "CollectedErrors",
    "ExecutionContext",
    "FieldDetails",
    "Grouped",
    "Path",
    "argument_values",
    "async_list",
    "collected_errors",
    "custom_is_type_of",
    "default_attribute",
    "direct_resolver",
    "fragment_definitions",
    "gather_with_cancel",
    "inspect",
    "is_iterable",
    "only_plain_execution",
    "released_after",
    "resolve_info_builder",
    "root_fields",
    "settle_in_background",
    "subfields",
    "uses_defer",
]

# The executor the planned one extends: Strawberry's, itself graphql-core's.
ExecutionContext = StrawberryGraphQLCoreExecutionContext

# Response keys with the field nodes selected under each, as graphql-core collects them.
Grouped = dict[str, list[FieldDetails]]


def variable_signature(
    schema: GraphQLSchema, node: VariableDefinitionNode
) -> GraphQLVariableSignature | None:
    """A variable's signature (name, input type, default), as graphql-core's coercion builds it;
    None when its type is no input type (graphql-core's build answers that)."""
    signature = get_variable_signature(schema, node)
    return None if isinstance(signature, GraphQLError) else signature


def variable_source(signature: GraphQLVariableSignature, value: Any = Undefined) -> VariableValueSource:
    """Where a variable's value came from (the request's input, or none given)."""
    return VariableValueSource(signature, value)


def variable_values_of(sources: dict[str, VariableValueSource], coerced: dict[str, Any]) -> VariableValues:
    """An execution's variable values, as graphql-core's coercion returns them."""
    return VariableValues(sources, coerced)


def fragment_details(definitions: dict[str, FragmentDefinitionNode]) -> dict[str, FragmentDetails]:
    """The executor's fragments, for fragments without variables of their own (as its build makes them)."""
    return {name: FragmentDetails(definition, None) for name, definition in definitions.items()}


def executor_of(
    cls: type[ExecutionContext],
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragment_definitions: dict[str, FragmentDefinitionNode],
    fragments: dict[str, FragmentDetails],
    values: VariableValues,
    root_value: Any,
    context_value: Any,
    field_resolver: Any,
    type_resolver: Any,
    subscribe_field_resolver: Any,
    enable_early_execution: bool,
    middleware: MiddlewareManager | None,
    is_awaitable: Any,
    is_async_iterable: Any,
    **kwargs: Any,
) -> ExecutionContext:
    """An executor, as graphql-core's `build` makes it once it has found the operation and its
    fragments and coerced the variables: its constructor, with the default resolvers."""
    return cls(
        schema,
        fragment_definitions,
        fragments,
        root_value,
        context_value,
        operation,
        values,
        field_resolver or default_field_resolver,
        type_resolver or default_type_resolver,
        subscribe_field_resolver or default_field_resolver,
        enable_early_execution,
        middleware,
        is_awaitable,
        is_async_iterable,
        **kwargs,
    )


def variable_values(executor: ExecutionContext, names: tuple[str, ...]) -> tuple[Any, ...]:
    """The coerced values of these variables in this execution (None for one not given)."""
    coerced = executor.variable_values.coerced
    return tuple(coerced.get(name) for name in names)


def fragment_definitions(executor: ExecutionContext) -> list[FragmentDefinitionNode]:
    """The document's fragment definitions."""
    return list(executor.fragment_definitions.values())


def root_fields(executor: ExecutionContext, root_type: GraphQLObjectType) -> Grouped:
    """The operation's top-level selection, fragments spread and fields merged."""
    collected = collect_fields(
        executor.schema, executor.fragments, executor.variable_values, root_type, executor.operation
    )
    return collected.grouped_field_set


def subfields(executor: ExecutionContext, type_: GraphQLObjectType, details: list[FieldDetails]) -> Grouped:
    """The merged selection under some field nodes, for one object type."""
    sub = collect_subfields(
        executor.schema, executor.fragments, executor.variable_values, executor.operation, type_, details
    )
    return sub.grouped_field_set


def uses_defer(details: list[FieldDetails]) -> bool:
    """Whether a field is deferred or selected through a fragment with variables (not planned)."""
    return any(d.defer_usage is not None or d.fragment_variable_values is not None for d in details)


def argument_values(executor: ExecutionContext, definition: GraphQLField, node: FieldNode) -> dict[str, Any]:
    """A field's arguments, coerced from the literals of its node and the request's variables."""
    return get_argument_values(
        definition, node, executor.variable_values, None, hide_suggestions=executor.hide_suggestions
    )


def collected_errors(executor: ExecutionContext) -> CollectedErrors:
    """The executor's error list, with the places error propagation nulled.

    The plan records its errors there too: an error is reported unless a place at or above it
    is already nulled, by the same rule and in the same store as graphql-core's own completions
    (which the plan hands async iterables to).
    """
    return executor.collected_errors


def settle_in_background(
    executor: ExecutionContext, awaitables: list[Awaitable[Any]], rest: Iterator[Any] | None = None
) -> None:
    """Let awaitables a failure abandons settle (and record their errors) without waiting for them;
    `rest`: a list's items not reached yet, drained for awaitables as graphql-core does."""
    if rest is not None:
        awaitables = [*awaitables, *collect_iterator_awaitables(rest, executor.is_awaitable)]
    if awaitables:
        executor.settle_in_background(awaitables)


def async_list(executor: ExecutionContext, value: Any) -> bool:
    """Whether a list field's value is an async iterable (completed by graphql-core's own code)."""
    return bool(executor.is_async_iterable(value))


def complete_async_list(
    executor: ExecutionContext,
    type_: GraphQLList[Any],
    details: list[FieldDetails],
    info: Any,
    path: Path,
    value: Any,
) -> Awaitable[list[Any]]:
    """A list from an async iterable, completed by graphql-core itself: items, their subfields and
    errors exactly as graphql-core's (rare enough not to be worth a planned version)."""
    return executor.complete_list_value(type_, details, info, path, value, None)  # type: ignore[return-value]


def complete_abstract(
    executor: ExecutionContext,
    type_: Any,
    details: list[FieldDetails],
    info: Any,
    path: Path,
    value: Any,
) -> Any:
    """A value of an interface or union type, completed by graphql-core itself: the runtime
    type's resolution and checks, the subfields and their errors exactly as graphql-core's."""
    return executor.complete_abstract_value(type_, details, info, path, value, None)


def resolve_info_builder(executor: ExecutionContext) -> Callable[..., Any]:
    """The executor's own `build_resolve_info(definition, nodes, parent type, path)`."""
    return executor.build_resolve_info


def only_plain_execution(executor: ExecutionContext) -> bool:
    """Whether the execution asks for nothing but the spec's semantics: no abort signal, hooks,
    resolve middleware, or disabled error propagation (those run through graphql-core only)."""
    middleware = executor.middleware_manager
    return (
        executor.abort_signal is None
        and executor.hooks is None
        and executor.error_propagation
        and (middleware is None or not middleware.middlewares)
    )


def default_attribute(definition: GraphQLField) -> str | None:
    """The attribute a field reads when reading it is all its resolver does, else None.

    Strawberry's `_is_default` marker is no evidence: it is also set on the resolver that runs
    a field's extensions (permission classes are one) around the attribute read. Only
    Strawberry's basic resolver (`_get_basic_result`, used for a field without resolver,
    extensions and exception handlers) reads the attribute and nothing else; a field with
    permissions, extensions or directives is never read directly, whatever its resolver says.
    """
    resolve = definition.resolve
    if (
        not getattr(resolve, "_is_default", False)
        or getattr(resolve, "__name__", None) != "_get_basic_result"
    ):
        return None
    strawberry_field = (definition.extensions or {}).get("strawberry-definition")
    name = getattr(strawberry_field, "python_name", None)
    if (
        not isinstance(name, str)
        or getattr(strawberry_field, "base_resolver", True)
        or getattr(strawberry_field, "extensions", True)
        or getattr(strawberry_field, "permission_classes", True)
        or getattr(strawberry_field, "directives", True)
        or getattr(strawberry_field, "default_resolver", None) is not getattr
    ):
        return None
    return name


def direct_resolver(definition: GraphQLField, schema: Any) -> tuple[Callable[..., Any], bool] | None:
    """The field's resolver function called as Strawberry's wrapper would call it, without the
    wrapper, and whether it reads the resolve info; None when the wrapper does more than that.

    Strawberry's resolver for a field with a resolver function builds an `Info`, converts the
    arguments to Python values and names, places the parent and the info where the function's
    signature asks for them, runs the field's extensions (permissions are extensions) and its
    exception handlers, and calls the function (through an `async def` of its own when the
    function is async). With no extensions, no exception handlers and only leaf arguments (whose
    conversion returns the value as graphql-core coerced it: a scalar, or an enum's member), all
    of that is the call below: the same function, the same arguments, the same result (an async
    function's coroutine runs nothing until awaited, so nothing can raise sooner than through
    the wrapper). `schema`: the GraphQLSchema Strawberry built (it refers back to Strawberry's).
    """
    field = (definition.extensions or {}).get("strawberry-definition")
    strawberry_schema = getattr(schema, "_strawberry_schema", None)
    resolver = getattr(field, "base_resolver", None)
    if field is None or strawberry_schema is None or resolver is None:
        return None
    converter = strawberry_schema.schema_converter
    if (
        field.extensions
        or field.permission_classes
        or field.is_subscription
        or converter._get_field_exception_handlers(field)
        or not callable(resolver.wrapped_func)
    ):
        return None
    config = strawberry_schema.config
    names: list[tuple[str, str]] = []
    for argument in field.arguments:
        type_ = argument.type
        while isinstance(type_, StrawberryOptional) and not isinstance(type_, StrawberryMaybe):
            type_ = type_.of_type
        if isinstance(type_, StrawberryMaybe) or not _is_leaf_type(
            type_, converter.scalar_registry, skip_classes=(GlobalID,)
        ):
            return None
        assert argument.python_name
        names.append((config.name_converter.from_argument(argument), argument.python_name))
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None
    call = _direct(
        resolver.wrapped_func,
        tuple(names),
        resolver.self_parameter is not None,
        tuple(p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None),
        info_name,
        lambda info: config.info_class(_raw_info=info, _field=field),
    )
    return call, info_name is not None


def _direct(
    func: Callable[..., Any],
    names: tuple[tuple[str, str], ...],
    takes_self: bool,
    parents: tuple[str, ...],
    info_name: str | None,
    info_of: Callable[[Any], Any],
) -> Callable[..., Any]:
    """`(source, info, **arguments)` calling func as Strawberry's get_arguments lays it out."""
    if not names and not parents and info_name is None:
        # The commonest shapes, each a single call.
        if takes_self:
            return lambda source, info, **_: func(source)
        return lambda source, info, **_: func()
    if not names and not parents and info_name is not None:
        if takes_self:
            return lambda source, info, **_: func(source, **{info_name: info_of(info)})
        return lambda source, info, **_: func(**{info_name: info_of(info)})

    def direct(source: Any, info: Any, **arguments: Any) -> Any:
        kwargs = {python: arguments[name] for name, python in names if name in arguments}
        for parent in parents:
            kwargs[parent] = source
        if info_name is not None:
            kwargs[info_name] = info_of(info)
        return func(source, **kwargs) if takes_self else func(**kwargs)

    return direct


def custom_is_type_of(type_: GraphQLObjectType) -> bool:
    """Whether the type's check on returned objects is not Strawberry's own (an isinstance check
    needing no resolve info), and so may need what only graphql-core passes it."""
    if type_.is_type_of is None:
        return False
    definition = (type_.extensions or {}).get("strawberry-definition")
    return definition is None or getattr(definition, "is_type_of", None) is not None


def _finished(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("this execution has finished")


# What a finished executor holds in place of its async helpers (bound to itself, a cycle).
_FINISHED = GraphQLResolveInfoHelpers(gather=_finished, track=_finished)


def released_after(executor: ExecutionContext, result: Any) -> Any:
    """The result, once the executor no longer refers to itself.

    graphql-core's executor holds its own bound methods (`async_helpers`): a reference cycle,
    so each request's executor, context and answer outlived the request until the cyclic GC
    found them, and the API's rare young collections (app.tune_gc) then freed many requests'
    worth at once, stalling the process (a tail-latency spike; docs/benchmarks.md). Dropped
    when the operation is done, everything goes on the spot.
    """
    if not executor.is_awaitable(result):
        executor.async_helpers = _FINISHED
        return result

    async def released() -> Any:
        try:
            return await result
        finally:
            executor.async_helpers = _FINISHED

    return released()

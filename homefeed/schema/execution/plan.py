"""Compiling a validated query into a plan: per object type, its response keys with their field
definitions, resolvers and completions (leaf coercion, list, object, non-null), collected once
with graphql-core's own field collection.

The cache of plans belongs to one schema (`plans_for`): the parser cache hands the same document
node to every schema in the process, and one schema's plan is no answer for another.

A field is read as a plain attribute only when Strawberry's resolver does nothing else
(compat.default_attribute); any other field, including one with permissions or extensions,
runs its own resolver, as graphql-core would call it.

@skip and @include are decided while collecting fields, with the request's variable values:
an operation using them has one plan per combination of the values of the variables their
conditions read (literal conditions are the same for every request).

A field of an interface or union type is planned up to its value: graphql-core resolves the
runtime type and completes the value below it, with the same executor (so its errors land in
the same list, in graphql-core's order).

An operation is refused (`Unplannable`) when it uses what a plan cannot hold: directives other
than @skip and @include, @defer, introspection of the schema, and custom `is_type_of`.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DirectiveNode,
    FieldNode,
    GraphQLAbstractType,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    Node,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)

from homefeed.schema.execution import compat

log = logging.getLogger("homefeed.execution")

# Compiled plans of one schema, by operation node: the parser cache hands out the same node for
# the same document, so an operation is compiled once per schema while it stays in that cache.
MAX_PLANS = 512
# Plans kept per operation, one per combination of its @skip/@include variables' values: a
# document with many such variables cannot make one operation hold more than this.
MAX_VARIANTS = 16
# The directives a plan can decide while it is compiled (from the request's variables).
CONDITIONS = ("skip", "include")


class Unplannable(Exception):
    """The operation uses something only graphql-core executes."""


# What completing a value of one output type does.
@dataclass(slots=True)
class Leaf:
    type_: GraphQLLeafType


@dataclass(slots=True)
class ListOf:
    type_: GraphQLList[Any]
    item: Completion
    item_non_null: bool


@dataclass(slots=True)
class ObjectOf:
    type_: GraphQLObjectType
    is_type_of: Callable[[Any, Any], Any] | None
    fields: list[PlannedField] = field(default_factory=list)


@dataclass(slots=True)
class AbstractOf:
    """An interface or union: graphql-core resolves the runtime type and completes the value
    (and everything below it) itself, as it does without a plan."""

    type_: GraphQLAbstractType


Completion = Leaf | ListOf | ObjectOf | AbstractOf


@dataclass(slots=True)
class PlannedField:
    key: str
    name: str
    nodes: list[FieldNode]
    details: list[compat.FieldDetails]
    definition: GraphQLField
    parent: GraphQLObjectType
    non_null: bool
    completion: Completion | None  # None: __typename
    # A field without a resolver: read the attribute directly (Strawberry's default resolver).
    attribute: str | None
    has_arguments: bool


@dataclass(slots=True)
class Plan:
    root: ObjectOf
    # Its code (compiled.py), generated on the first compiled execution and kept with the plan.
    compiled: Callable[..., Any] | None = None


@dataclass(slots=True)
class _Operation:
    operation: OperationDefinitionNode
    # The variables @skip/@include conditions read, sorted; None: other directives (unplannable).
    conditions: tuple[str, ...] | None
    # By the conditions' values (() when there are none).
    plans: OrderedDict[tuple[Any, ...], Plan | None] = field(default_factory=OrderedDict)


class Plans:
    """The plans of recent operations (None for an unplannable one), least recently used dropped."""

    def __init__(self, size: int = MAX_PLANS) -> None:
        self.size = size
        self._operations: OrderedDict[int, _Operation] = OrderedDict()

    def for_operation(self, executor: compat.ExecutionContext) -> Plan | None:
        """The plan of the executor's operation for its @skip/@include values, compiled on first sight."""
        operation = executor.operation
        key = id(operation)
        entry = self._operations.get(key)
        if entry is None or entry.operation is not operation:
            entry = _Operation(operation, _conditions(executor))
            if entry.conditions is None:
                _fallback(operation, "a directive other than @skip/@include")
            self._operations[key] = entry
            if len(self._operations) > self.size:
                self._operations.popitem(last=False)
        else:
            self._operations.move_to_end(key)
        if entry.conditions is None:
            entry.plans[()] = None
            return None
        values = compat.variable_values(executor, entry.conditions)
        if values in entry.plans:
            entry.plans.move_to_end(values)
            return entry.plans[values]
        try:
            plan: Plan | None = Compiler(executor).compile()
        except Unplannable as exc:
            if not entry.plans:
                _fallback(operation, str(exc))
            plan = None
        entry.plans[values] = plan
        if len(entry.plans) > MAX_VARIANTS:
            entry.plans.popitem(last=False)
        return plan

    def entries(self) -> list[tuple[OperationDefinitionNode, Plan | None]]:
        """The cached operations with their plans (one per @skip/@include values), oldest first."""
        return [(e.operation, plan) for e in self._operations.values() for plan in e.plans.values()]


_SCHEMA_PLANS: weakref.WeakKeyDictionary[GraphQLSchema, Plans] = weakref.WeakKeyDictionary()


def plans_for(schema: GraphQLSchema) -> Plans:
    """The plan cache of one schema (made on first use, gone with the schema)."""
    plans = _SCHEMA_PLANS.get(schema)
    if plans is None:
        plans = _SCHEMA_PLANS[schema] = Plans()
    return plans


class Compiler:
    def __init__(self, executor: compat.ExecutionContext) -> None:
        self.ex = executor
        self.schema = executor.schema

    def compile(self) -> Plan:
        ex = self.ex
        root_type = self.schema.get_root_type(OperationType.QUERY)
        if root_type is None:
            raise Unplannable("no query type")
        root = ObjectOf(root_type, None)
        root.fields = self._fields(root_type, compat.root_fields(ex, root_type))
        return Plan(root)

    def _fields(self, parent: GraphQLObjectType, grouped: compat.Grouped) -> list[PlannedField]:
        fields = []
        for key, details in grouped.items():
            if compat.uses_defer(details):
                raise Unplannable("defer or fragment variables")
            nodes = [d.node for d in details]
            name = nodes[0].name.value
            if name in ("__schema", "__type"):
                raise Unplannable("introspection")
            definition = self.schema.get_field(parent, name)
            if definition is None:  # validation would have refused it
                raise Unplannable(f"unknown field {name}")
            if name == "__typename":
                completion: Completion | None = None
            else:
                completion = self._completion(definition.type, details)
            fields.append(
                PlannedField(
                    key=key,
                    name=name,
                    nodes=nodes,
                    details=details,
                    definition=definition,
                    parent=parent,
                    non_null=is_non_null_type(definition.type),
                    completion=completion,
                    attribute=compat.default_attribute(definition),
                    has_arguments=bool(definition.args or nodes[0].arguments),
                )
            )
        return fields

    def _completion(self, type_: GraphQLOutputType, details: list[compat.FieldDetails]) -> Completion:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if is_list_type(type_):
            assert isinstance(type_, GraphQLList)
            item = type_.of_type
            return ListOf(type_, self._completion(item, details), is_non_null_type(item))
        if is_leaf_type(type_):
            return Leaf(type_)
        if is_abstract_type(type_):
            assert isinstance(type_, GraphQLInterfaceType | GraphQLUnionType)
            return AbstractOf(type_)
        if not is_object_type(type_):
            raise Unplannable(f"unknown kind of type {type_}")
        assert isinstance(type_, GraphQLObjectType)
        if compat.custom_is_type_of(type_):
            raise Unplannable("custom is_type_of")
        completion = ObjectOf(type_, type_.is_type_of)
        completion.fields = self._fields(type_, compat.subfields(self.ex, type_, details))
        return completion


def _fallback(operation: OperationDefinitionNode, reason: str) -> None:
    # Once per operation while it is cached: which operations miss the plan, and why, is what
    # an operator needs to see, not a line per request.
    name = operation.name.value if operation.name else "anonymous"
    log.info("operation %s runs through graphql-core: %s", name, reason)


def _conditions(executor: compat.ExecutionContext) -> tuple[str, ...] | None:
    """The variables the operation's @skip/@include conditions read (in its own definition and
    its fragments), sorted; None when any other directive appears."""
    names: set[str] = set()
    stack: list[Any] = [executor.operation, *compat.fragment_definitions(executor)]
    while stack:
        current = stack.pop()
        if isinstance(current, DirectiveNode):
            if current.name.value not in CONDITIONS:
                return None
            names.update(
                a.value.name.value for a in current.arguments or () if isinstance(a.value, VariableNode)
            )
        elif isinstance(current, Node):
            stack.extend(getattr(current, k) for k in current.keys if k != "loc")
        elif isinstance(current, list | tuple):
            stack.extend(current)
    return tuple(sorted(names))

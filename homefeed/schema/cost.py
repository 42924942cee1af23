"""Query cost: the most objects an operation's answer can hold, known before anything runs.

The depth and alias limits bound a document's shape, not its work: three nested
`posts(first: 100)` pass both and ask for a million posts. The cost multiplies page sizes
along the nesting instead, and an operation over the budget is refused after validation,
before any resolver (so before any SQL) runs. docs/api.md ("Limits") states the rules:

- every field whose value is an object (a user, a post, an edge, a page, pageInfo) counts
  once for each time it can appear in the answer; scalars and enums count nothing;
- a connection (a field with a `first` argument) counts once where it stands; the lists
  directly inside it (`edges`, `nodes`) hold `first` items each: its value, its variable's,
  or the argument's default when omitted or null, taken as 1 to 100 (out-of-range values are
  refused when the field runs);
- any other list holds up to 100 items;
- siblings add up, fragments and inline fragments count wherever they are spread (even
  spreads whose type conditions exclude each other, and fields under @skip/@include);
- introspection (`__schema`, `__type`, `__typename`) reads the schema, not the database: free.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    Visitor,
    get_named_type,
    get_operation_ast,
    is_composite_type,
    visit,
)
from graphql.pyutils import Undefined
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from homefeed.feed.config import DEFAULTS
from homefeed.feed.feeds import MAX_PAGE
from homefeed.resolvers.connections import DEFAULT_FIRST
from homefeed.resolvers.context import Context
from homefeed.schema.operation import provided_operation_name, unnamed_choice_error

PAGE_ARGUMENT = "first"


@dataclass(frozen=True, slots=True)
class _Walk:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    defaults: Mapping[str, Any]


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The cost of the operation a request runs (see the module's rules); 0 if it names none."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    walk = _Walk(
        schema,
        {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)},
        variables or {},
        _variable_defaults(operation),
    )
    return _selections(walk, operation.selection_set, root, 1, None, frozenset())


def _variable_defaults(operation: OperationDefinitionNode) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        value = definition.default_value
        if isinstance(value, IntValueNode):
            defaults[definition.variable.name.value] = int(value.value)
    return defaults


def _selections(
    walk: _Walk,
    selection_set: SelectionSetNode,
    parent: GraphQLNamedType,
    times: int,
    page: int | None,
    spreading: frozenset[str],
) -> int:
    """The cost of a selection set on `parent`, which appears `times` times; `page` is the page
    size if `parent` is a connection. `spreading`: the fragments being expanded on this path
    (validation refuses cycles, but this may run on a document another rule refused)."""
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            field = _field_of(parent, selection.name.value)
            if field is not None:
                total += _field(walk, field, selection, times, page, spreading)
        elif isinstance(selection, InlineFragmentNode):
            on = _type_named(walk, selection.type_condition.name.value if selection.type_condition else None)
            total += _selections(walk, selection.selection_set, on or parent, times, page, spreading)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = walk.fragments.get(name)
            if fragment is None or name in spreading:
                continue
            on = _type_named(walk, fragment.type_condition.name.value)
            total += _selections(walk, fragment.selection_set, on or parent, times, page, spreading | {name})
    return total


def _field(
    walk: _Walk, field: GraphQLField, node: FieldNode, times: int, page: int | None, spreading: frozenset[str]
) -> int:
    named = get_named_type(field.type)
    if not is_composite_type(named):
        return 0
    for size in _list_sizes(field.type, page):
        times *= size
    inner = _page_size(walk, field, node) if PAGE_ARGUMENT in field.args else None
    if node.selection_set is None:
        return times
    return times + _selections(walk, node.selection_set, named, times, inner, spreading)


def _list_sizes(type_: Any, page: int | None) -> Iterator[int]:
    """How many items each list wrapper of a field's type can hold: the enclosing connection's
    page for the outermost, the largest page for any other."""
    while True:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        elif isinstance(type_, GraphQLList):
            yield page if page is not None else MAX_PAGE
            page = None
            type_ = type_.of_type
        else:
            return


def _page_size(walk: _Walk, field: GraphQLField, node: FieldNode) -> int:
    """The page size a connection field asks for, as the resolver will see it, within 1..MAX_PAGE."""
    value: Any = Undefined
    for argument in node.arguments or ():
        if argument.name.value != PAGE_ARGUMENT:
            continue
        literal = argument.value
        if isinstance(literal, VariableNode):
            name = literal.name.value
            value = walk.variables[name] if name in walk.variables else walk.defaults.get(name, Undefined)
        elif isinstance(literal, IntValueNode):
            value = int(literal.value)
        else:
            value = None  # null (anything else is refused by validation)
    if value is Undefined:
        value = field.args[PAGE_ARGUMENT].default_value
    if value is None or value is Undefined:
        value = DEFAULT_FIRST
    if not isinstance(value, int) or isinstance(value, bool):
        return MAX_PAGE  # refused when variables are coerced; counted at its worst meanwhile
    return min(max(value, 1), MAX_PAGE)


def _field_of(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
    if name.startswith("__") or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return None
    field: GraphQLField | None = parent.fields.get(name)
    return field


def _type_named(walk: _Walk, name: str | None) -> GraphQLNamedType | None:
    return walk.schema.get_type(name) if name else None


# Counted costs by (schema, document, operation, the values of its page variables). The parser
# cache hands the same document to every request of one query text, so a home-feed page is
# counted once per page size, not once per request. Entries hold their schema and document, so
# neither id is reused while the entry lives.
_COUNTED: OrderedDict[tuple[int, int, str | None, tuple[int | None, ...]], tuple[object, object, int]] = (
    OrderedDict()
)
_COUNTED_MAX = 1024
_ABSENT = -(2**63)  # stands for a page variable the request did not send (no page size is this)
# By id, not by the document: graphql-core hashes a node by its whole subtree.
_page_variables: OrderedDict[int, tuple[DocumentNode, tuple[str, ...]]] = OrderedDict()


def counted_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """operation_cost, remembered for documents seen again with the same page sizes."""
    known = _page_variables.get(id(document))
    if known is None or known[0] is not document:
        known = _page_variables[id(document)] = (document, _variables_in_pages(document))
        if len(_page_variables) > _COUNTED_MAX:
            _page_variables.popitem(last=False)
    given = variables or {}
    # Absent and null differ: absent takes the variable's default, null the argument's.
    values = tuple(given.get(n, _ABSENT) for n in known[1])
    if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
        return operation_cost(schema, document, operation_name, variables)
    key = (id(schema), id(document), operation_name, values)
    hit = _COUNTED.get(key)
    if hit is not None:
        _COUNTED.move_to_end(key)
        return hit[2]
    cost = operation_cost(schema, document, operation_name, variables)
    _COUNTED[key] = (schema, document, cost)
    if len(_COUNTED) > _COUNTED_MAX:
        _COUNTED.popitem(last=False)
    return cost


def _variables_in_pages(document: DocumentNode) -> tuple[str, ...]:
    """The variables given as page sizes anywhere in the document: all the count depends on
    besides the document itself."""
    names: set[str] = set()

    class Find(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: object) -> None:
            if node.name.value == PAGE_ARGUMENT and isinstance(node.value, VariableNode):
                names.add(node.value.name.value)

    visit(document, Find())
    return tuple(sorted(names))


def budget_of(context: object) -> int:
    """The cost budget of the request's settings (the default outside a served request)."""
    if isinstance(context, Context):
        return context.services.settings.query_cost_budget
    return DEFAULTS.query_cost_budget


def over_budget(cost: int, budget: int) -> GraphQLError:
    """The error refusing an operation over the budget."""
    return GraphQLError(
        f"query cost {cost} exceeds the budget of {budget}: ask for smaller pages (`first`) "
        "or nest fewer connections",
        extensions={"code": "BAD_USER_INPUT", "cost": {"requested": cost, "budget": budget}},
    )


# What CostLimit adds to the `extensions` of the operation being run in this task: a
# subscription's events rendered outside Strawberry's result handling (schema/broadcast.py's
# frames) carry it as Strawberry's would.
REPORTED: ContextVar[dict[str, Any] | None] = ContextVar("homefeed_cost_reported", default=None)


class CostLimit(SchemaExtension):
    """Refuses operations over the cost budget before they run, and reports the cost of the rest
    in the response's `extensions.cost` ({"requested": N, "budget": B})."""

    def __init__(self) -> None:
        self._cost: dict[str, int] | None = None

    def on_validate(self) -> Iterator[None]:
        # Runs after the validation cache set the document's errors, and before Strawberry checks
        # them: an error added here stops the operation before execution.
        ctx = self.execution_context
        if ctx.pre_execution_errors is None and ctx.graphql_document is not None:
            ctx.pre_execution_errors = validate_document(
                ctx.schema._schema, ctx.graphql_document, ctx.validation_rules
            )
        if not ctx.pre_execution_errors and ctx.graphql_document is not None:
            unnamed = unnamed_choice_error(ctx.graphql_document, provided_operation_name(ctx))
            if unnamed is not None:
                ctx.pre_execution_errors = [unnamed]
                yield
                return
            budget = budget_of(ctx.context)
            cost = counted_cost(ctx.schema._schema, ctx.graphql_document, ctx.operation_name, ctx.variables)
            self._cost = {"requested": cost, "budget": budget}
            REPORTED.set(self.get_results())
            if cost > budget:
                ctx.pre_execution_errors = [over_budget(cost, budget)]
        yield

    def get_results(self) -> dict[str, Any]:
        """The cost, for the response's `extensions`."""
        return {"cost": self._cost} if self._cost is not None else {}

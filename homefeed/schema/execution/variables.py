"""Known-shape variable coercion: a persisted operation's variables coerced without graphql-core's
generic walk.

Every request of a persisted operation sends variables of the same few types, and graphql-core
coerces them generically: it looks up each definition's type in the schema, builds its
signature, checks the value's nesting depth and walks the type's wrappers, which was 3% of a
persisted feed read's CPU. An operation whose variables are all of scalar or enum types,
nullable or not, is prepared once (`KnownVariables.of`): its signatures and the document's
fragments are kept, and a request's values are coerced by their leaf type's own
`coerce_input_value`, the function graphql-core's coercion ends in for such a type.

Only the plainly valid case is taken: a value given (or a nullable one left out) that its type
accepts. Anything else (a default to apply, a missing non-null value, null for a non-null
type, a value its type refuses) is left to graphql-core's own build (`None`), which answers it
with its own errors, so those stay the same word for word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    Undefined,
    is_leaf_type,
)

from homefeed.schema.execution import compat


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    signature: Any  # graphql-core's variable signature
    leaf: GraphQLLeafType
    non_null: bool
    has_default: bool


@dataclass(frozen=True, slots=True)
class KnownVariables:
    """One operation of one document, with what building its executor needs, found once."""

    schema: GraphQLSchema
    document: DocumentNode
    operation_name: str | None
    operation: OperationDefinitionNode
    fragment_definitions: dict[str, FragmentDefinitionNode]
    fragments: dict[str, Any]  # graphql-core's FragmentDetails by name
    variables: tuple[_Variable, ...]

    @classmethod
    def of(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        operation: OperationDefinitionNode,
    ) -> KnownVariables | None:
        """The operation prepared, or None when one of its variables is not of a scalar or enum
        type (a list, an input object), or a fragment has variables of its own."""
        definitions: dict[str, FragmentDefinitionNode] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    return None
                definitions[definition.name.value] = definition
        variables = []
        for node in operation.variable_definitions or ():
            signature = compat.variable_signature(schema, node)
            if signature is None:
                return None
            type_ = signature.type
            non_null = isinstance(type_, GraphQLNonNull)
            leaf = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
            if not is_leaf_type(leaf):
                return None
            assert isinstance(leaf, GraphQLScalarType | GraphQLEnumType)
            variables.append(
                _Variable(signature.name, signature, leaf, non_null, node.default_value is not None)
            )
        return cls(
            schema,
            document,
            operation_name,
            operation,
            definitions,
            compat.fragment_details(definitions),
            tuple(variables),
        )

    def coerce(self, inputs: dict[str, Any]) -> Any:
        """graphql-core's coerced variable values for these inputs, or None when graphql-core
        must coerce them itself (see the module's docstring)."""
        sources: dict[str, Any] = {}
        coerced: dict[str, Any] = {}
        for variable in self.variables:
            name = variable.name
            value = inputs.get(name, Undefined)
            if value is Undefined:
                if variable.non_null or variable.has_default:
                    return None
                sources[name] = compat.variable_source(variable.signature)
                continue
            sources[name] = compat.variable_source(variable.signature, value)
            if value is None:
                if variable.non_null:
                    return None
                coerced[name] = None
                continue
            try:
                result = variable.leaf.coerce_input_value(value)
            except Exception:  # as graphql-core's coercion: any error is a refused value
                return None
            if result is Undefined:
                return None
            coerced[name] = result
        return compat.variable_values_of(sources, coerced)

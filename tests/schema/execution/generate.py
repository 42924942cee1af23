"""Hypothesis strategies for queries generated from a schema: fields, aliases, fragments,
variables, bad arguments and bad tokens, for comparing the planned executor with graphql-core."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)
from hypothesis import strategies as st

Draw = Callable[[st.SearchStrategy[Any]], Any]

# Argument literals by scalar name: valid ones and some wrong ones (bad arguments).
LITERALS: dict[str, list[str]] = {
    "Int": ["0", "1", "2", "5", "-1", "100000", '"x"', "1.5"],
    "String": ['""', '"a"', '"@alice"', '"bob"', "3"],
    "ID": ['"1"', '"2"', '"bad"', '"UG9zdDox"', '"VXNlcjox"', "7"],
    "Boolean": ["true", "false", "1"],
    "Float": ["1.5", "0", '"x"'],
}
GARBAGE = ["}", "{", "(", "$", "...", "@", '"', "#"]


def _literal(draw: Draw, type_: GraphQLInputType, extra: dict[str, list[str]]) -> str:
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(inner, GraphQLList):
        return f"[{_literal(draw, inner.of_type, extra)}]"
    if isinstance(inner, GraphQLEnumType):
        return str(draw(st.sampled_from([*inner.values, "NOT_A_VALUE"])))
    name = getattr(inner, "name", "")
    return str(draw(st.sampled_from([*extra.get(name, []), *LITERALS.get(name, ['"x"']), "null"])))


class QueryBuilder:
    """Builds one query: selections, with arguments as literals or variables."""

    def __init__(self, draw: Draw, schema: GraphQLSchema, extra: dict[str, list[str]]) -> None:
        self.draw = draw
        self.schema = schema
        self.extra = extra
        self.variables: list[str] = []
        self.values: dict[str, Any] = {}
        self.fragments: list[str] = []
        self.aliases = 0

    def selection(self, type_: GraphQLObjectType, depth: int) -> str:
        draw = self.draw
        names = sorted(type_.fields)
        chosen = draw(st.lists(st.sampled_from([*names, "__typename"]), min_size=1, max_size=4))
        parts = []
        for name in chosen:
            part = self.field(type_, name, depth)
            if part is None:
                continue
            # Aliased apart: one name with different arguments would be a validation error.
            self.aliases += 1
            parts.append(f"a{self.aliases}: {self._insert_condition(part)}")
        if not parts:
            parts = ["__typename"]
        if draw(st.booleans()) and depth > 0:
            fragment = f"F{len(self.fragments)}"
            self.fragments.append(f"fragment {fragment} on {type_.name} {{ {' '.join(parts)} }}")
            return f"...{fragment}{self.condition()} __typename"
        if draw(st.booleans()):
            return f"... on {type_.name}{self.condition()} {{ {' '.join(parts)} }}"
        return " ".join(parts)

    def condition(self) -> str:
        """Now and then a @skip or @include, on a literal or on a Boolean variable (maybe unset)."""
        kind = self.draw(st.integers(0, 5))
        if kind > 1:
            return ""
        directive = "skip" if kind == 0 else "include"
        if self.draw(st.booleans()):
            return f" @{directive}(if: {self.draw(st.sampled_from(['true', 'false']))})"
        var = f"v{len(self.variables)}"
        default = self.draw(st.sampled_from(["", " = true", " = false"]))
        self.variables.append(f"${var}: Boolean{'!' if not default else ''}{default}")
        if not default or self.draw(st.booleans()):
            self.values[var] = self.draw(st.booleans())
        return f" @{directive}(if: ${var})"

    def _insert_condition(self, part: str) -> str:
        """The field with a condition after its name and arguments (before its selection)."""
        condition = self.condition()
        if not condition:
            return part
        head, brace, rest = part.partition(" {")
        return f"{head}{condition}{brace}{rest}"

    def field(self, parent: GraphQLObjectType, name: str, depth: int) -> str | None:
        if name == "__typename":
            return name
        definition = parent.fields[name]
        args = []
        for arg_name, arg in definition.args.items():
            if not isinstance(arg.type, GraphQLNonNull) and self.draw(st.booleans()):
                continue
            if self.draw(st.integers(0, 3)) == 0:
                var = f"v{len(self.variables)}"
                self.variables.append(f"${var}: {arg.type}")
                self.values[var] = self.draw(self._value(arg.type))
                args.append(f"{arg_name}: ${var}")
            else:
                args.append(f"{arg_name}: {_literal(self.draw, arg.type, self.extra)}")
        head = name + (f"({', '.join(args)})" if args else "")
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return head
        if depth == 0:
            return None
        if is_abstract_type(named):
            possible = self.schema.get_possible_types(named)
            inner = " ".join(f"... on {t.name} {{ {self.selection(t, depth - 1)} }}" for t in possible)
            return f"{head} {{ __typename {inner} }}"
        assert isinstance(named, GraphQLObjectType)
        return f"{head} {{ {self.selection(named, depth - 1)} }}"

    def _value(self, type_: GraphQLInputType) -> st.SearchStrategy[Any]:
        inner = get_named_type(type_)
        name = inner.name if isinstance(inner, GraphQLScalarType) else ""
        base: st.SearchStrategy[Any] = {
            "Int": st.sampled_from([0, 1, 2, 5, -1, 10**6, "x"]),
            "String": st.sampled_from(["", "a", "alice", "@bob", 3, *self._extra_values("String")]),
            "ID": st.sampled_from(["1", "bad", "UG9zdDox", 2, *self._extra_values("ID")]),
            "Boolean": st.sampled_from([True, False, "yes"]),
        }.get(name, st.none())
        if isinstance(inner, GraphQLEnumType):
            base = st.sampled_from([*inner.values, "NOT_A_VALUE"])
        return st.one_of(base, st.none())

    def _extra_values(self, name: str) -> list[Any]:
        """The extra literals of a scalar as variable values (a literal that is no JSON is dropped)."""
        values = []
        for literal in self.extra.get(name, []):
            try:
                values.append(json.loads(literal))
            except ValueError:
                continue
        return values


@st.composite
def queries(
    draw: Draw, schema: GraphQLSchema, extra: dict[str, list[str]] | None = None, depth: int = 3
) -> tuple[str, dict[str, Any]]:
    """A query over the schema's Query type, with its variables; now and then a bad token."""
    builder = QueryBuilder(draw, schema, extra or {})
    root = schema.query_type
    assert root is not None
    body = builder.selection(root, depth)
    head = f"query Q({', '.join(builder.variables)})" if builder.variables else "query Q"
    text = " ".join([f"{head} {{ {body} }}", *builder.fragments])
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(GARBAGE)) + text[at:]
    return text, builder.values

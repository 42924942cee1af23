"""Known-shape variable coercion (execution/variables.py) against graphql-core's own: for
documents generated from homefeed's schema and variable values of every kind (right, wrong,
null, missing, nested, out of range), the known coercion either gives exactly what
graphql-core's `get_variable_values` gives, or declines and leaves the request to it; and the
persisted feed query's plain variables are taken by the known path, not declined."""

from __future__ import annotations

from typing import Any

from graphql import get_operation_ast, parse, validate
from graphql.execution.values import get_variable_values
from hypothesis import event, given, settings
from hypothesis import strategies as st

from homefeed.bench.reads.load import FEED
from homefeed.schema import schema
from homefeed.schema.execution.variables import KnownVariables
from tests.schema.execution import generate

SCHEMA = schema._schema

# Any JSON value a request may send, and the values the schema's types take or refuse.
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(["LATEST", "RANKED", "NOT_A_VALUE", "1", "UG9zdDox", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=5,
)


def same(values: Any) -> Any:
    """Variable values as compared: graphql-core builds a new NonNull wrapper of a variable's type
    for every request (equal by what it wraps, not as objects)."""
    sources = {
        name: (s.signature.name, str(s.signature.type), s.signature.default, s.value)
        for name, s in values.sources.items()
    }
    return sources, list(values.coerced.items())


@settings(max_examples=300)
@given(data=st.data())
def test_known_coercion_gives_graphql_cores_values_or_declines(data: Any) -> None:
    text, values = data.draw(generate.queries(SCHEMA), label="query")
    try:
        document = parse(text)
    except Exception:  # a query with garbage inserted: the fast path never prepares it
        return
    if validate(SCHEMA, document):
        return
    operation = get_operation_ast(document, None)
    assert operation is not None
    known = KnownVariables.of(SCHEMA, document, None, operation)
    if known is None:
        event("declined: a variable of a list or input type")
        return
    # The generated values, some replaced by any JSON value, some dropped.
    names = [d.variable.name.value for d in operation.variable_definitions or ()]
    for name in names:
        choice = data.draw(st.integers(0, 3), label=f"{name}: keep, replace, drop")
        if choice == 1:
            values[name] = data.draw(JSON, label=name)
        elif choice == 2:
            values.pop(name, None)
    got = known.coerce(values)
    expected = get_variable_values(SCHEMA, operation.variable_definitions or (), values, max_errors=50)
    if got is None:
        event("declined: graphql-core coerces")
        return
    event("coerced")
    assert not isinstance(expected, list), (text, values, expected)
    assert same(got) == same(expected)  # coerced in the same order too


def test_the_feed_querys_plain_variables_take_the_known_path() -> None:
    document = parse(FEED)
    operation = get_operation_ast(document, "HomeFeed")
    assert operation is not None
    known = KnownVariables.of(SCHEMA, document, "HomeFeed", operation)
    assert known is not None
    for values in (
        {"first": 20, "after": None, "order": "LATEST"},
        {"first": 5, "after": "abc", "order": "RANKED"},
        {},
    ):
        got = known.coerce(values)
        assert got is not None
        assert same(got) == same(get_variable_values(SCHEMA, operation.variable_definitions or (), values))
    # A value its type refuses, a float for an Int: graphql-core answers it.
    assert known.coerce({"first": 2.5}) is None
    assert known.coerce({"order": "SIDEWAYS"}) is None


FEED_DOCUMENT = parse(FEED)
FEED_OPERATION = get_operation_ast(FEED_DOCUMENT, "HomeFeed")


@settings(max_examples=300)
@given(
    values=st.dictionaries(
        st.sampled_from(["first", "after", "order", "other"]),
        st.integers(-(2**33), 2**33) | st.sampled_from(["LATEST", "RANKED", "RANDOM", "x", "1"]) | JSON,
        max_size=4,
    )
)
def test_the_feed_querys_variables_of_any_value_coerce_as_graphql_core_does(values: dict[str, Any]) -> None:
    assert FEED_OPERATION is not None
    known = KnownVariables.of(SCHEMA, FEED_DOCUMENT, "HomeFeed", FEED_OPERATION)
    assert known is not None
    got = known.coerce(values)
    expected = get_variable_values(SCHEMA, FEED_OPERATION.variable_definitions or (), values)
    if got is None:
        event("declined")
        # Declined only what graphql-core refuses, or coerces otherwise than plainly.
        assert isinstance(expected, list), values
        return
    event("coerced")
    assert not isinstance(expected, list)
    assert same(got) == same(expected)

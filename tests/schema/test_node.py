"""Relay global ids: the encoding clients hold, and its round trip."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from homefeed.schema.node import parse_global_id, to_global_id

type_names = st.sampled_from(["Post", "User"])
keys = st.integers(min_value=1, max_value=2**63 - 1)


@given(type_name=type_names, pk=keys)
def test_a_global_id_is_standard_base64_of_type_and_key(type_name: str, pk: int) -> None:
    # Ids clients stored before must still name the same objects.
    assert to_global_id(type_name, pk) == base64.b64encode(f"{type_name}:{pk}".encode()).decode()
    assert isinstance(to_global_id(type_name, pk), str)


@given(type_name=type_names, pk=keys)
def test_a_global_id_parses_back(type_name: str, pk: int) -> None:
    assert parse_global_id(to_global_id(type_name, pk)) == (type_name, pk)

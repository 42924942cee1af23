from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.idset import IdSet

ids = st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=60)


@given(ids, ids)
def test_an_idset_answers_as_the_set_of_its_ids(members: list[int], probes: list[int]) -> None:
    got = IdSet.of(members)
    assert len(got) == len(set(members))
    assert list(got) == sorted(set(members))
    for probe in probes + members:
        assert (probe in got) == (probe in set(members))
    assert "1" not in got


@given(ids, ids)
def test_idsets_are_equal_when_their_ids_are(a: list[int], b: list[int]) -> None:
    assert (IdSet.of(a) == IdSet.of(b)) == (set(a) == set(b))
    if set(a) == set(b):
        assert hash(IdSet.of(a)) == hash(IdSet.of(b))


@given(ids)
def test_ids_already_ascending_and_distinct_make_the_same_idset(members: list[int]) -> None:
    assert IdSet.of_sorted(sorted(set(members))) == IdSet.of(members)

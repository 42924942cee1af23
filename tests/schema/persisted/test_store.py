"""The APQ store never holds more than its byte budget, and keeps what was used last."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from homefeed.schema.persisted import DocumentStore

entries = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.text(max_size=40)), max_size=60)


@given(capacity=st.integers(0, 200), puts=entries)
def test_the_store_stays_within_its_budget_and_keeps_the_latest_fitting_document(
    capacity: int, puts: list[tuple[str, str]]
) -> None:
    store = DocumentStore(capacity)
    for key, text in puts:
        store.put(key, text)
        assert store.size <= capacity
        cost = len(key) + len(text.encode())
        # What fits is stored (the newest entry is never the one evicted to make room for itself).
        if cost <= capacity:
            assert store.get(key) == text
    held = {k: store.get(k) for k in "abcdefgh"}
    # The running size is exactly what is held: no leak from replaced or evicted documents.
    assert store.size == sum(len(k) + len(t.encode()) for k, t in held.items() if t is not None)
    assert len(store) == sum(t is not None for t in held.values())


def test_least_recently_used_goes_first() -> None:
    store = DocumentStore(capacity=3 * (1 + 10))
    for key in "abc":
        store.put(key, "x" * 10)
    assert store.get("a") == "x" * 10  # a is now the most recently used
    store.put("d", "y" * 10)
    assert store.get("b") is None
    assert [store.get(k) for k in "acd"] == ["x" * 10, "x" * 10, "y" * 10]


def test_a_document_bigger_than_the_budget_is_not_stored_and_evicts_nothing() -> None:
    store = DocumentStore(capacity=20)
    store.put("a", "small")
    store.put("b", "z" * 100)
    assert store.get("b") is None
    assert store.get("a") == "small"

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.mailbox import Mailbox


@given(st.lists(st.one_of(st.integers(), st.none()), max_size=40))
def test_a_mailbox_is_a_bounded_fifo(ops: list[int | None]) -> None:
    """Put (an int) and take (None) in any order: what comes out is what went in, in order,
    and a full mailbox refuses more, as asyncio.Queue does."""
    box: Mailbox[int] = Mailbox(5)
    model: list[int] = []
    for op in ops:
        if op is None:
            if model:
                assert box.get_nowait() == model.pop(0)
            else:
                with pytest.raises(asyncio.QueueEmpty):
                    box.get_nowait()
        elif len(model) >= 5:
            with pytest.raises(asyncio.QueueFull):
                box.put_nowait(op)
        else:
            box.put_nowait(op)
            model.append(op)
        assert box.qsize() == len(model) and box.empty() == (not model)


async def test_a_waiting_reader_wakes_for_the_next_item() -> None:
    box: Mailbox[str] = Mailbox(2)
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not reader.done()
    box.put_nowait("a")
    box.put_nowait("b")
    assert await reader == "a"
    assert await box.get() == "b"


async def test_a_cancelled_reader_leaves_the_mailbox_usable() -> None:
    box: Mailbox[str] = Mailbox(2)
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    box.put_nowait("a")
    assert await box.get() == "a"

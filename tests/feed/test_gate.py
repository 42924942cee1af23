"""homefeed.feed.gate: never more holders than slots, a bounded line, refusals at once, and no
slot lost to a caller cancelled while waiting or while holding one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.gate import Gate, GateFull


@asynccontextmanager
async def held(gate: Gate) -> AsyncIterator[None]:
    await gate.acquire()
    try:
        yield
    finally:
        gate.release()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_past_slots_and_line_are_refused_at_once() -> None:
    gate = Gate(slots=2, queue=3)
    release = asyncio.Event()

    async def work() -> None:
        async with held(gate):
            await release.wait()

    tasks = [asyncio.create_task(work()) for _ in range(8)]
    await settle()
    refused = [t for t in tasks if t.done()]
    assert len(refused) == 3 and all(isinstance(t.exception(), GateFull) for t in refused)
    assert (gate.busy, gate.waiting) == (2, 3)
    release.set()
    await asyncio.gather(*(t for t in tasks if t not in refused))
    assert (gate.busy, gate.waiting) == (0, 0)


async def test_a_cancelled_waiter_leaves_the_line_and_takes_no_slot() -> None:
    gate = Gate(slots=1, queue=2)
    await gate.acquire()
    waiting = asyncio.create_task(gate.acquire())
    await settle()
    assert gate.waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.waiting == 0
    gate.release()
    assert gate.busy == 0
    await gate.acquire()  # the slot is free again
    assert gate.busy == 1


@given(
    slots=st.integers(1, 4),
    queue=st.integers(0, 4),
    plan=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=12),
)
async def test_no_more_holders_than_slots_and_every_slot_comes_back(
    slots: int, queue: int, plan: list[tuple[bool, bool]]
) -> None:
    # Each caller may be cancelled while waiting or while holding; whatever happens, the gate
    # never admits more than `slots`, and ends with nothing held and nobody in line.
    gate = Gate(slots, queue)
    holding = 0
    peak = 0
    release = asyncio.Event()

    async def caller() -> None:
        nonlocal holding, peak
        async with held(gate):
            holding += 1
            peak = max(peak, holding)
            try:
                await release.wait()
            finally:
                holding -= 1

    tasks = [asyncio.create_task(caller()) for _ in plan]
    await settle()
    for task, (cancel, _) in zip(tasks, plan, strict=True):
        if cancel:
            task.cancel()
    await settle()
    release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert peak <= slots
    refused = sum(isinstance(o, GateFull) for o in outcomes)
    assert refused == max(0, len(plan) - slots - queue)
    assert (gate.busy, gate.waiting) == (0, 0)

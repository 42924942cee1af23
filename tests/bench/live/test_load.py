"""The load generator's process and pipe, as the live bench drives them."""

from __future__ import annotations

import os
import signal
import time

import pytest

from homefeed.bench.errors import BenchError
from homefeed.bench.live.api import SUBSCRIPTION, TRANSPORT_WS
from homefeed.bench.live.load import Plan, answer, start_load_generator


async def test_a_killed_load_generator_is_reported_at_once_not_after_the_wait() -> None:
    # A port nothing listens on: the generator would report its one failed subscriber, but it
    # is killed first, so the bench must learn of its death from the pipe, not from a timeout.
    plan = Plan("ws://127.0.0.1:9/graphql", ["t"], [TRANSPORT_WS], 1, False, SUBSCRIPTION)
    process, pipe = start_load_generator(plan, "test-load-generator")
    try:
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        began = time.monotonic()
        with pytest.raises(BenchError, match="ended without answering"):
            await answer(pipe, 120)
        assert time.monotonic() - began < 60
    finally:
        process.join(10)
        pipe.close()


async def test_a_live_load_generator_answers_through_the_pipe() -> None:
    plan = Plan("ws://127.0.0.1:9/graphql", ["t"], [TRANSPORT_WS], 1, False, SUBSCRIPTION)
    process, pipe = start_load_generator(plan, "test-load-generator")
    try:
        kind, connected, failed = await answer(pipe, 120)
        assert (kind, connected, len(failed)) == ("connected", 0, 1)
        pipe.send(("stop",))
        kind, arrivals = await answer(pipe, 60)
        assert kind == "arrivals" and arrivals.added == {}
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
        pipe.close()

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.modes import DRAINING, PULL, PUSH, is_pulled, is_pushed, next_mode


def test_push_author_crossing_the_threshold_is_pulled() -> None:
    assert next_mode(PUSH, 99, 100) == PUSH
    assert next_mode(PUSH, 100, 100) == PULL


def test_pulled_author_stays_pulled_inside_the_hysteresis_band() -> None:
    assert next_mode(PULL, 95, 100) == PULL
    assert next_mode(PULL, 90, 100) == PULL
    assert next_mode(PULL, 89, 100) == DRAINING


def test_draining_author_returns_to_pull_when_popular_again() -> None:
    assert next_mode(DRAINING, 100, 100) == PULL
    assert next_mode(DRAINING, 50, 100) == DRAINING


def test_extreme_thresholds() -> None:
    assert next_mode(PUSH, 0, 0) == PULL
    assert next_mode(PULL, 0, 0) == PULL
    assert next_mode(PUSH, 10**9, math.inf) == PUSH
    # A server restarted with threshold infinity drains authors pulled under the old one.
    assert next_mode(PULL, 10**9, math.inf) == DRAINING


@given(st.sampled_from([PUSH, PULL, DRAINING]), st.integers(0, 10**6), st.integers(0, 10**6))
def test_every_post_reaches_readers_in_some_way(mode: int, followers: int, threshold: int) -> None:
    new = next_mode(mode, followers, threshold)
    assert is_pushed(new) or is_pulled(new)
    # Leaving PULL always passes through DRAINING, never straight to PUSH.
    if mode == PULL:
        assert new != PUSH

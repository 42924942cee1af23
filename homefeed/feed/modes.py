"""How an author's posts reach followers, and when that changes (with hysteresis).

PUSH: fanned out into followers' timelines. PULL (celebrity): readers merge the
author's recent list. DRAINING: leaving PULL; posts are fanned out AND pulled
until the posts made while pulled have been backfilled into followers'
timelines, so no post is ever in neither place.
"""

from __future__ import annotations

import math

PUSH = 0
PULL = 1
DRAINING = 2

# An author leaves PULL only below this fraction of the threshold, so one follow or
# unfollow at the boundary does not flip the mode back and forth.
HYSTERESIS = 0.9


def next_mode(mode: int, followers: int, threshold: float) -> int:
    """The mode an author should be in now."""
    if followers >= threshold:
        return PULL
    if mode == PUSH:
        return PUSH
    low = threshold * HYSTERESIS if math.isfinite(threshold) else math.inf
    if mode == PULL and followers >= low:
        return PULL
    return DRAINING


def is_pushed(mode: int) -> bool:
    """Whether posts in this mode are fanned out."""
    return mode in (PUSH, DRAINING)


def is_pulled(mode: int) -> bool:
    """Whether readers pull posts in this mode."""
    return mode in (PULL, DRAINING)

"""Hidden preferences of a synthetic world: the ground truth the ranked feed is measured against.

Each viewer has favourite authors (a share of all (viewer, author) pairs) and each post a
quality, half its author's (some authors are consistently better) and half its own; how
likely a viewer is to like a post they see follows from both and from its age.
Everything is a hash of (seed, ids), so the seeding that simulates engagement and the bench
that measures rankings agree without storing anything, and nothing in the engine can see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # splitmix64's finaliser: every input bit flips about half the output bits.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform(seed: int, *keys: I64) -> F64:
    """A deterministic uniform [0, 1) per element of the keys (broadcast together)."""
    with np.errstate(over="ignore"):
        h = np.full(np.broadcast(*keys).shape, np.uint64(seed) * _GOLDEN + _GOLDEN, dtype=np.uint64)
        for key in keys:
            h = _mix(h ^ (np.asarray(key).astype(np.uint64) * _GOLDEN))
    unit: F64 = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return unit


@dataclass(frozen=True)
class Preferences:
    """The world's hidden preferences (seeded)."""

    seed: int
    favourite_share: float = 0.08
    # Like probability: sigmoid(base + favourite + quality * quality_weight - age / age_scale).
    base: float = -4.0
    favourite: float = 3.0
    quality_weight: float = 3.5
    age_scale_hours: float = 36.0

    def is_favourite(self, viewers: I64, authors: I64) -> npt.NDArray[np.bool_]:
        """Whether each viewer counts the author among their favourites."""
        favourite: npt.NDArray[np.bool_] = uniform(self.seed, viewers, authors) < self.favourite_share
        return favourite

    def quality(self, authors: I64, posts: I64) -> F64:
        """Each post's quality in [0, 1): most posts are dull, a few are very good."""
        quality: F64 = (0.5 * uniform(self.seed + 2, authors) + 0.5 * uniform(self.seed + 1, posts)) ** 3
        return quality

    def like_probability(self, viewers: I64, authors: I64, posts: I64, age_hours: F64) -> F64:
        """How likely each viewer is to like each post they see (viewers own posts: never)."""
        logit = (
            self.base
            + self.favourite * self.is_favourite(viewers, authors)
            + self.quality_weight * self.quality(authors, posts)
            - age_hours / self.age_scale_hours
        )
        p: F64 = np.where(viewers == authors, 0.0, 1.0 / (1.0 + np.exp(-logit)))
        return p

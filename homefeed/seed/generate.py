"""A synthetic world for `homefeed seed`: a deterministic power-law social graph, generated with numpy.

Pure: the same `SeedParams` (seed and `now_ms` included) give the same `World`, bit
for bit, because every random draw comes from one `numpy.random.Generator(PCG64(seed))`
in a fixed order. Nothing here touches a database (load.py does).

The graph: popularity is Zipf-like (user of rank r, over a random permutation of users,
is chosen as a followee with weight r**-zipf_exponent), followee counts are lognormal
around a median of ~200 (scaled down for tiny worlds), posting activity is lognormal
(Poisson-smoothed to integers) with a configurable mean, posts spread over the last
~30 days. At 100,000 users that is ~20M follows, a handful of accounts above 50k
followers and ~1M posts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from homefeed.feed.ids import EPOCH_MS, LOGICAL_SHARDS, SEQUENCE_BITS, SHARD_BITS
from homefeed.seed.errors import SeedError

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

DAY_MS = 86_400_000
# Seeded times stop this far before "now", so live ids minted by next_id() are always larger.
_SAFETY_MS = 60_000
# Users joined between these many days ago, so they exist before any of their posts or follows.
_JOINED_DAYS = (60, 730)


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST_NAMES = _split(
    "Ada Alan Barbara Claude Donald Edsger Frances Grace Hedy Ivan John Katherine Leslie "
    "Margaret Niklaus Ole Radia Shafi Tim Yukihiro"
)
_LAST_NAMES = _split(
    "Lovelace Turing Liskov Shannon Knuth Dijkstra Allen Hopper Lamarr Sutherland McCarthy "
    "Johnson Lamport Hamilton Wirth Dahl Perlman Goldwasser Berners-Lee Matsumoto"
)
_WORDS = _split(
    "coffee deploy weekend garden rust python sunset river latency cache pizza train bug "
    "release music mountain review index queue merge rain book cat dog kernel graph shard "
    "timeline feed launch tea morning night city ocean build test refactor idea chart snow bike "
    "coast forest lunch meeting sprint story photo game match concert podcast paper draft "
    "thread window bridge signal garden harbor valley planet comet"
)


# ----------------------------------------------------------------------------------------------
# Parameters and the generated world


@dataclass(frozen=True, slots=True)
class SeedParams:
    users: int
    seed: int = 0
    posts_per_user: float = 10.0
    reset: bool = False
    # Followee counts: lognormal with this median (scaled down to a tenth of the world when
    # smaller, so tiny worlds stay sparse) and log-space spread, capped at users - 1.
    median_followees: float = 200.0
    followee_sigma: float = 0.45
    # Popularity weight of rank r is r**-zipf_exponent. Followees are drawn without replacement,
    # so a steeper exponent saturates the top ranks at "everyone follows them"; 0.72 leaves a
    # handful of accounts above 50k followers at 100k users.
    zipf_exponent: float = 0.72
    # Posts per user: Poisson around a lognormal rate with this mean and log-space spread.
    posting_sigma: float = 1.2
    post_days: int = 30
    # Share of users seen within `active_days`; the rest were last seen earlier (the engine skips
    # them at fan-out).
    active_fraction: float = 0.75
    active_days: int = 7
    # The instant the world is generated relative to; None means the current time. Tests pin it
    # so the generated world is reproducible to the millisecond.
    now_ms: int | None = None

    def check(self) -> None:
        """Raise SeedError naming the first invalid parameter."""
        if self.users < 1:
            raise SeedError(f"--users must be at least 1, got {self.users}")
        if self.seed < 0:
            raise SeedError(f"--seed must be non-negative, got {self.seed}")
        if not (0 <= self.posts_per_user <= 10_000) or math.isnan(self.posts_per_user):
            raise SeedError(f"--posts-per-user must be between 0 and 10000, got {self.posts_per_user}")
        if not 0 <= self.active_fraction <= 1:
            raise SeedError(f"active_fraction must be between 0 and 1, got {self.active_fraction}")
        if not 1 <= self.post_days < _JOINED_DAYS[0]:
            raise SeedError(f"post_days must be between 1 and {_JOINED_DAYS[0] - 1}, got {self.post_days}")
        if self.median_followees <= 0 or self.zipf_exponent < 0:
            raise SeedError("median_followees must be positive and zipf_exponent non-negative")


@dataclass(frozen=True, slots=True, eq=False)
class World:
    """A generated world. Users are numbered 0..n-1 in id order (so also in join order).

    Follow edges are sorted by (follower, followee), which is the primary-key order of
    `follows`; `followers_order` permutes them into (followee, follower) order for
    `followers`. Posts are sorted by id, which is also time order.
    """

    params: SeedParams
    now_ms: int
    user_ids: I64
    user_created_ms: I64
    user_last_seen_ms: I64
    follower_count: I64
    following_count: I64
    follow_src: I64
    follow_dst: I64
    follow_ms: I64
    followers_order: I64
    post_author: I64
    post_ids: I64
    post_text_bits: I64

    @property
    def users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def follows(self) -> int:
        return int(self.follow_src.shape[0])

    @property
    def posts(self) -> int:
        return int(self.post_ids.shape[0])

    def handle(self, user: int) -> str:
        return user_handle(user, self.users)

    def display_name(self, user: int) -> str:
        return user_display_name(user)

    def post_text(self, post: int) -> str:
        return post_text(int(self.post_text_bits[post]), post)

    def active_users(self) -> int:
        """Users seen within `params.active_days` of `now_ms`."""
        cutoff = self.now_ms - self.params.active_days * DAY_MS
        return int(np.count_nonzero(self.user_last_seen_ms >= cutoff))


def user_handle(user: int, users: int) -> str:
    """`user000123`: zero-padded so handles sort like user numbers."""
    width = max(6, len(str(max(users - 1, 0))))
    return f"user{user:0{width}d}"


def user_display_name(user: int) -> str:
    first = _FIRST_NAMES[user % len(_FIRST_NAMES)]
    last = _LAST_NAMES[(user // len(_FIRST_NAMES)) % len(_LAST_NAMES)]
    return f"{first} {last}"


def post_text(bits: int, post: int) -> str:
    """A short post made of 3..12 words picked by the bits of a per-post random number."""
    count = 3 + bits % 10
    bits //= 10
    words: list[str] = []
    for _ in range(count):
        words.append(_WORDS[bits % len(_WORDS)])
        bits //= len(_WORDS)
    return " ".join(words) + f" #{post}"


def mint_ids(ms: I64) -> I64:
    """Ids (the layout of homefeed.feed.ids.make_id) for ascending millisecond times: strictly increasing.

    Posts in the same millisecond get sequences 0, 1, 2, ...; the (astronomically unlikely)
    4097th one spills into the next millisecond rather than colliding.
    """
    n = ms.shape[0]
    index = np.arange(n, dtype=np.int64)
    sequence = index - np.searchsorted(ms, ms, side="left").astype(np.int64)
    ids = ((ms - EPOCH_MS) << SEQUENCE_BITS) + sequence
    # Strictly increasing: ids - index must never decrease.
    return np.asarray(np.maximum.accumulate(ids - index) + index, dtype=np.int64)


def mint_post_ids(ms: I64, author_ids: I64) -> I64:
    """Post ids (homefeed.feed.ids.make_post_id) for ascending millisecond times: strictly increasing,
    each carrying its author's logical shard in the low bits.

    Posts in the same millisecond get sequences 0, 1, 2, ...; past the 6-bit sequence a post
    moves to the next millisecond's sequences rather than colliding.
    """
    n = ms.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.arange(n, dtype=np.int64)
    sequence = index - np.searchsorted(ms, ms, side="left").astype(np.int64)
    # Slots of 1 << SHARD_BITS ids: a slot is (millisecond, sequence); never reuse or go back.
    slot = ((ms - EPOCH_MS) << (SEQUENCE_BITS - SHARD_BITS)) + sequence
    slot = np.maximum.accumulate(slot - index) + index
    return np.asarray((slot << SHARD_BITS) | (author_ids & (LOGICAL_SHARDS - 1)), dtype=np.int64)


# Generation steps reported to the progress callback (one tick each).
GENERATION_STEPS = 6


def generate(params: SeedParams, on_step: Callable[[], None] | None = None) -> World:
    """The world for params: pure and deterministic (same params, same arrays)."""
    params.check()
    tick = on_step or (lambda: None)
    rng = np.random.Generator(np.random.PCG64(params.seed))
    now_ms = params.now_ms if params.now_ms is not None else int(time.time() * 1000)
    n = params.users
    end_ms = now_ms - _SAFETY_MS

    # Users: join times, ids minted from them, last seen.
    joined = end_ms - rng.uniform(_JOINED_DAYS[0] * DAY_MS, _JOINED_DAYS[1] * DAY_MS, n).astype(np.int64)
    user_ids = mint_ids(np.sort(joined))
    created_ms = (user_ids >> SEQUENCE_BITS) + EPOCH_MS
    active_ms = max(params.active_days, 1) * DAY_MS
    is_active = rng.random(n) < params.active_fraction
    recent = end_ms - rng.uniform(0, active_ms - DAY_MS / 24, n).astype(np.int64)
    # Inactive users were last seen somewhere between joining and a day before the active window.
    stale_hi = np.maximum(created_ms, end_ms - active_ms - DAY_MS)
    stale = created_ms + (rng.random(n) * (stale_hi - created_ms)).astype(np.int64)
    last_seen_ms = np.where(is_active, recent, stale).astype(np.int64)
    tick()

    # Popularity: Zipf weights over a random permutation of users.
    rank = np.empty(n, dtype=np.int64)
    rank[rng.permutation(n)] = np.arange(1, n + 1, dtype=np.int64)
    weight = rank.astype(np.float64) ** -params.zipf_exponent
    cdf = np.cumsum(weight)
    cdf /= cdf[-1]
    tick()

    # Followee counts: lognormal around the median, at least 1, at most everyone else.
    median = min(params.median_followees, max(1.0, (n - 1) / 10))
    wanted = np.rint(np.exp(math.log(median) + params.followee_sigma * rng.standard_normal(n)))
    wanted = np.clip(wanted, min(1, n - 1), n - 1).astype(np.int64)
    tick()

    keys = _draw_edges(rng, n, wanted, cdf, weight)
    tick()

    src = keys // n
    dst = keys % n
    del keys
    # A follow happens after both accounts exist and before now.
    lo = np.maximum(created_ms[src], created_ms[dst])
    follow_ms = lo + (rng.random(src.shape[0]) * (end_ms - lo)).astype(np.int64)
    followers_order = np.argsort(dst * n + src, kind="stable").astype(np.int64)
    follower_count = np.bincount(dst, minlength=n).astype(np.int64)
    following_count = np.bincount(src, minlength=n).astype(np.int64)
    tick()

    # Posts: lognormal rate per user (mean posts_per_user), Poisson counts, uniform times.
    if params.posts_per_user > 0:
        mu = math.log(params.posts_per_user) - params.posting_sigma**2 / 2
        rate = rng.lognormal(mu, params.posting_sigma, n)
        per_user = rng.poisson(rate).astype(np.int64)
    else:
        per_user = np.zeros(n, dtype=np.int64)
    author = np.repeat(np.arange(n, dtype=np.int64), per_user)
    start = end_ms - params.post_days * DAY_MS
    post_ms = start + (rng.random(author.shape[0]) * (end_ms - start)).astype(np.int64)
    order = np.argsort(post_ms, kind="stable")
    post_author = author[order]
    post_ids = mint_post_ids(post_ms[order], user_ids[post_author])
    text_bits = np.asarray(rng.integers(0, 2**62, size=post_ids.shape[0], dtype=np.int64))
    tick()

    return World(
        params=params,
        now_ms=now_ms,
        user_ids=user_ids,
        user_created_ms=created_ms,
        user_last_seen_ms=last_seen_ms,
        follower_count=follower_count,
        following_count=following_count,
        follow_src=src,
        follow_dst=dst,
        follow_ms=follow_ms,
        followers_order=followers_order,
        post_author=post_author,
        post_ids=post_ids,
        post_text_bits=text_bits,
    )


def _draw_edges(rng: np.random.Generator, n: int, wanted: I64, cdf: F64, weight: F64) -> I64:
    """Sorted distinct edge keys follower*n + followee: wanted[u] followees per user, by popularity.

    Sampling without replacement, vectorised: draw with replacement, drop self-follows and
    duplicates, redraw each user's shortfall, repeat. Shortfalls shrink geometrically; the few
    left after the rounds (users wanting most of a tiny world) are filled exactly per user.
    """
    users = np.arange(n, dtype=np.int64)
    accepted = np.empty(0, dtype=np.int64)
    need = wanted.copy()
    for _ in range(24):
        if not need.any():
            break
        src = np.repeat(users, need)
        dst = np.minimum(np.searchsorted(cdf, rng.random(src.shape[0]), side="right"), n - 1)
        fresh = _sorted_unique((src * n + dst)[src != dst])
        if accepted.size:
            at = np.minimum(np.searchsorted(accepted, fresh), accepted.size - 1)
            fresh = fresh[accepted[at] != fresh]
        # Both sorted: a stable sort of the concatenation is a linear merge.
        accepted = np.sort(np.concatenate([accepted, fresh]), kind="stable")
        need = wanted - np.bincount(accepted // n, minlength=n)
    if need.any():
        extra: list[I64] = []
        for u in np.flatnonzero(need):
            have = accepted[np.searchsorted(accepted, u * n) : np.searchsorted(accepted, (u + 1) * n)] % n
            taken = np.zeros(n, dtype=bool)
            taken[have] = True
            taken[u] = True
            candidates = np.flatnonzero(~taken)
            p = weight[candidates] / weight[candidates].sum()
            picked = rng.choice(candidates, size=int(need[u]), replace=False, p=p)
            extra.append(u * n + np.asarray(picked, dtype=np.int64))
        accepted = np.sort(np.concatenate([accepted, *extra]), kind="stable")
    return accepted


def _sorted_unique(keys: I64) -> I64:
    """np.unique for int64 keys, several times faster: numpy's stable sort of integers is a radix sort."""
    ordered = np.sort(keys, kind="stable")
    if ordered.size == 0:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]

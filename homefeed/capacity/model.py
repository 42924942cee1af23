"""The capacity model: from traffic assumptions and measured per-operation costs to servers.

Pure arithmetic, no I/O: `plan(Assumptions, Measured)` gives a `Plan`. Every figure is
derived from a named input, so a changed assumption or a new measurement changes exactly
the figures that depend on it. docs/capacity.md explains each formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_PER_DAY = 86_400
GB = 1e9


@dataclass(frozen=True, slots=True)
class Assumptions:
    """Traffic and fleet assumptions: each is a `homefeed capacity` flag with its default."""

    dau: int = 100_000_000
    reads_per_user_day: float = 100.0  # home-feed page reads per daily user
    posts_per_user_day: float = 4.0
    peak_to_average: float = 2.5
    timeline_users_per_dau: float = 1.0  # users holding a timeline (seen within ACTIVE_DAYS) per DAU
    active_follower_share: float = 0.75  # followers seen within ACTIVE_DAYS: those fan-out writes to
    pushed_edge_share: float = 1.0  # follows of authors below the celebrity threshold (pushed)
    timeline_size: int = 800
    redis_key_overhead_bytes: float = 100.0  # per timeline key: the key, its expiry, the dict entry
    redis_gb_per_master: float = 26.0
    redis_headroom: float = 0.5  # share of a master's memory (and CPU) kept free
    cpu_headroom: float = 0.4  # share of API, worker and PostgreSQL cores kept free
    pg_cores_per_server: int = 32
    pg_cpu_ms_per_post: float = 2.0  # the post + outbox statement and the job's reads (not measured)
    api_cpu_ms_per_post: float = 5.0  # createPost through GraphQL (not measured)


@dataclass(frozen=True, slots=True)
class Measured:
    """Per-operation costs measured by the benches (or given as flags)."""

    api_cpu_ms_per_read: float  # API process CPU per home-feed read (bench read, hybrid)
    pg_cpu_ms_per_read: float  # PostgreSQL backend CPU per read (bench read, hybrid)
    redis_cpu_ms_per_read: float  # Redis CPU per read (bench read, hybrid)
    fanout_writes_per_worker_s: float  # timeline writes per second of one worker (bench fanout)
    bytes_per_entry: float  # Redis bytes per timeline entry (bench fanout)
    mean_followers: float  # follows per user in the benched graph (bench fanout)


@dataclass(frozen=True, slots=True)
class Plan:
    """What the assumptions and measurements call for at peak."""

    reads_per_s_avg: float
    reads_per_s_peak: float
    posts_per_s_avg: float
    posts_per_s_peak: float
    fanout_writes_per_post: float
    fanout_writes_per_s_peak: float
    timeline_users: float
    redis_bytes: float
    redis_masters_for_memory: int
    redis_masters_for_cpu: int
    redis_masters: int
    api_cores: float
    worker_cores: float
    pg_read_cores: float
    pg_write_cores: float
    pg_primaries: int
    pg_replicas: int


def _usable(total: float, headroom: float) -> float:
    return total * (1.0 - headroom)


def plan(a: Assumptions, m: Measured) -> Plan:
    """Peak rates, memory and servers for the assumptions, from the measured costs."""
    reads_avg = a.dau * a.reads_per_user_day / SECONDS_PER_DAY
    posts_avg = a.dau * a.posts_per_user_day / SECONDS_PER_DAY
    reads_peak = reads_avg * a.peak_to_average
    posts_peak = posts_avg * a.peak_to_average
    # A pushed post is appended to each active follower's timeline; pulled authors cost readers instead.
    per_post = m.mean_followers * a.pushed_edge_share * a.active_follower_share
    fanout_peak = posts_peak * per_post

    timeline_users = a.dau * a.timeline_users_per_dau
    redis_bytes = timeline_users * (a.timeline_size * m.bytes_per_entry + a.redis_key_overhead_bytes)
    masters_memory = math.ceil(redis_bytes / _usable(a.redis_gb_per_master * GB, a.redis_headroom))
    # One Redis master uses one core. Its writes are bounded by what one worker pushed into one
    # Redis in the bench (a lower bound on what the Redis could take); its reads by their CPU.
    redis_cores = fanout_peak / m.fanout_writes_per_worker_s + reads_peak * m.redis_cpu_ms_per_read / 1000
    masters_cpu = math.ceil(redis_cores / _usable(1.0, a.redis_headroom))

    api_cores = (reads_peak * m.api_cpu_ms_per_read + posts_peak * a.api_cpu_ms_per_post) / 1000
    worker_cores = fanout_peak / m.fanout_writes_per_worker_s
    pg_read = reads_peak * m.pg_cpu_ms_per_read / 1000
    pg_write = posts_peak * a.pg_cpu_ms_per_post / 1000
    per_server = _usable(a.pg_cores_per_server, a.cpu_headroom)
    return Plan(
        reads_per_s_avg=reads_avg,
        reads_per_s_peak=reads_peak,
        posts_per_s_avg=posts_avg,
        posts_per_s_peak=posts_peak,
        fanout_writes_per_post=per_post,
        fanout_writes_per_s_peak=fanout_peak,
        timeline_users=timeline_users,
        redis_bytes=redis_bytes,
        redis_masters_for_memory=masters_memory,
        redis_masters_for_cpu=masters_cpu,
        redis_masters=max(masters_memory, masters_cpu, 1),
        api_cores=api_cores / (1.0 - a.cpu_headroom),
        worker_cores=worker_cores / (1.0 - a.cpu_headroom),
        pg_read_cores=pg_read,
        pg_write_cores=pg_write,
        # Writes need primaries (shards, docs/scale.md); the read path's visibility statement
        # goes to replicas, so read cores size the replicas.
        pg_primaries=max(1, math.ceil(pg_write / per_server)),
        pg_replicas=math.ceil(pg_read / per_server),
    )

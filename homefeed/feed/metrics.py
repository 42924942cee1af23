"""The engine's Prometheus series: one place that names them, so every process exports the same set.

Defined here and updated where the event happens (the job runner, the worker loop, the read
path, the live hub); `/metrics` on an API process and `homefeed worker --metrics-port` expose
them. Names and meanings are listed in docs/operations.md.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# ---- the write path ----------------------------------------------------------------------------

OUTBOX_DEPTH = Gauge("homefeed_outbox_jobs", "Jobs waiting in the outbox (sampled).")
OUTBOX_OLDEST_AGE = Gauge(
    "homefeed_outbox_oldest_age_seconds", "Age of the oldest job waiting in the outbox (sampled)."
)
DEAD_JOBS = Gauge("homefeed_dead_jobs", "Jobs in the dead-letter table (sampled).")
JOBS = Counter(
    "homefeed_jobs", "Outbox jobs handled, by kind and outcome (done, failed, dead).", ["kind", "outcome"]
)
FANOUT_LAG = Histogram(
    "homefeed_fanout_lag_seconds",
    "From a post's commit to its id reaching the timelines (or the pulled list) of a job's followers.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# ---- the read path -----------------------------------------------------------------------------

COLD_REBUILDS = Counter("homefeed_cold_rebuilds", "Timelines rebuilt from PostgreSQL on a read.")
PULL_FALLBACKS = Counter(
    "homefeed_pull_fallback_reads",
    "Home-feed reads (or their deeper part) answered by the PostgreSQL pull query, by reason.",
    ["reason"],
)
CELEBRITY_CACHE = Counter(
    "homefeed_celebrity_cache",
    "Look-ups of pulled authors' lists in the process cache, by result.",
    ["result"],
)

LIST_REWRITE_GIVEUPS = Counter(
    "homefeed_list_rewrite_giveups",
    "Timeline or pulled lists dropped (to be rebuilt on read) after a rewrite lost every race to appends.",
)

REPLICA_READS = Counter(
    "homefeed_replica_reads",
    "Reads answered by a PostgreSQL replica, by read"
    " (visible, pull, rebuild, authors, posts, users, follows, likes, viewer).",
    ["read"],
)
REPLICA_SKIPS = Counter(
    "homefeed_replica_skips",
    "Reads that could have gone to a replica but went to the primary, by reason.",
    ["reason"],
)
REPLICA_LAG = Gauge(
    "homefeed_replica_lag_seconds",
    "How far each replica was behind the primary at the last probe (+Inf: down).",
    ["replica"],
)

# ---- live updates ------------------------------------------------------------------------------

LIVE_SUBSCRIBERS = Gauge("homefeed_live_subscribers", "Live home-feed subscriptions open in this process.")
LIVE_DELIVERED = Counter(
    "homefeed_live_events_delivered", "Live updates handed to subscribers, by kind.", ["kind"]
)
LIVE_RESYNCS = Counter("homefeed_live_resyncs", "RESYNC updates sent to subscribers.")
LIVE_OVERFLOWS = Counter(
    "homefeed_live_queue_overflows", "Times a slow subscriber's queue overflowed and its backlog was dropped."
)

# ---- limits ------------------------------------------------------------------------------------

RATE_LIMITED = Counter(
    "homefeed_rate_limited",
    "Requests answered RATE_LIMITED, by limit "
    "(query, anonymous, write, log_in, sign_up, passwords, ranked_snapshot).",
    ["limit"],
)

# ---- ranking -----------------------------------------------------------------------------------

IMPRESSIONS = Counter(
    "homefeed_impressions",
    "Sampled feed impressions, by outcome (queued, dropped: queue full, written, failed: not written).",
    ["outcome"],
)

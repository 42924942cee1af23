"""`homefeed bench fanout`: the write path's figures on a seeded graph, each beside its baseline.

What is measured, all in one process, against the configured (or embedded) servers:

1. Fan-out throughput: real posts by the authors with the most active followers go
   through the real outbox -> `FanoutWorker` -> `Fanout` -> `BulkWriter` path; timeline
   writes (active followers reached) per second of wall time. The same keys are then
   written by the `BulkWriter` alone (the Redis side, without PostgreSQL), and a sample of
   them, as default sorted sets, by a plain redis-py pipeline of ZADD + ZREMRANGEBYRANK per
   key, batched the same way: the baseline (redis-py's blocking client, the faster of its two;
   the asyncio client's rate is reported beside it).
2. createPost latency for an author with a handful of followers and for the author with
   the most: the write is one INSERT of post + outbox row, so follower count must not show.
3. Cold rebuild: for users following ~300 accounts, the timeline is deleted and rebuilt
   (`Feeds.rebuild_timeline`), and separately read cold through `Feeds.home`.
4. Post-to-visible lag: a worker runs in the background while an author with ~10k
   followers posts; the lag is from the start of createPost until sampled followers'
   timelines (including the follower written last) hold the post.
5. Memory: `MEMORY USAGE` over full timelines, per entry, beside a default sorted set of
   decimal-string members with id scores.

Isolation: timelines live under their own key prefix (`<prefix>-bench`), so the bench never
touches the timelines the service reads; they are warmed up full before measuring (real
rebuilds for a few users, copied with DUMP/RESTORE to the rest, since rebuilding 100k
timelines from PostgreSQL would take minutes) and dropped at the end. The posts it creates
are deleted from PostgreSQL at the end, outbox rows included.

Modules: options, base (the bench's state and shared helpers), one per measurement
(throughput, latency, cold, lag, memory), measure (the order they run in) and report.
"""

from homefeed.bench.writes.measure import run
from homefeed.bench.writes.options import FanoutOptions
from homefeed.bench.writes.report import CONTRACT_KEYS, FanoutReport

__all__ = ["CONTRACT_KEYS", "FanoutOptions", "FanoutReport", "run"]

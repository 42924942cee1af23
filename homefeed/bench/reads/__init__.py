"""`homefeed bench read`: home-feed reads at 32 connections, hybrid vs pull vs the baseline.

What is measured, against the configured (or embedded) servers and the seeded graph:

1. A sample of active users (seen within HOMEFEED_ACTIVE_DAYS) and a token for each, minted
   with the service's own secret (no log-ins).
2. The baseline's snapshot: each sampled user's first page and up to `depth` deeper pages, read
   once through the real engine, with the users, posts, follows and likes hydrating them.
3. For each variant the API runs as its own process tree (`homefeed serve --workers 2`:
   uvicorn, uvloop, httptools, orjson answers; no in-process fan-out worker, since nothing is
   written): HOMEFEED_FEED_STRATEGY = hybrid or pull, and the baseline (the same stack over
   the snapshot, from its own app factory: see baseline/); all are started first, and
   only the one being measured gets load. A separate load-generator process holds
   `connections` keep-alive HTTP/1.1 connections; each runs sessions back to back: a random
   sampled user's `homeFeed(first: 20)` (post bodies, authors, like counts, viewer flags),
   then 0 to `depth` deeper pages following `endCursor`. After a warm-up, every request's
   latency (request written to answer read) is kept.
4. The `seconds` measured per variant are taken in `rounds` slices, the variants in turn (in a
   rotated order each round), each slice after a short warm-up of its own. A shared machine
   speeds up and slows down by several per cent over minutes; taken in turn, every variant
   meets the same drift, so the ratios between them hold.
5. Per variant: throughput, p50/p90/p99/max, errors, the load generator's own CPU time and
   the server's, and the machine's load. Ratios (hybrid vs pull, hybrid vs baseline) are of the
   same run. Nothing is written to the database or Redis beyond what reads do (activity
   refreshes, cold rebuilds of timelines).

Modules: options, load (the load-generator process), measure (this process: servers, slices),
report (figures and table), outputs (the files) and chart (matplotlib, loaded only there).
"""

from homefeed.bench.reads.measure import run
from homefeed.bench.reads.options import VARIANTS, ReadOptions
from homefeed.bench.reads.outputs import write_outputs
from homefeed.bench.reads.report import ReadReport, VariantResult

__all__ = ["VARIANTS", "ReadOptions", "ReadReport", "VariantResult", "run", "write_outputs"]

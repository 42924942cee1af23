"""`homefeed bench live`: live-update delivery lag and memory with a thousand subscribers.

What is measured, against the configured (or embedded) servers and the seeded graph:

1. The API runs as its own process (`homefeed serve`, in-process fan-out worker), with a
   celebrity threshold that makes the most-followed author pulled and leaves an author
   with ~10k followers pushed.
2. A load-generator process (never the server's) opens the subscribers over real
   websockets, most on graphql-transport-ws and a slice on the legacy graphql-ws protocol,
   each with its own token in connection_init and one `homeFeedUpdates` subscription.
   Subscribers follow both authors when the graph has enough such users.
3. Memory: the server's RSS (all its processes) before and after the subscribers are
   connected and idle, divided by their number. Redis: the pub/sub connections held by the
   server's processes while they are connected (the design wants one per process).
4. Lag: posts alternately by the two authors through the GraphQL API; for every subscriber
   that follows the author, the time from the start of createPost to the arrival of the
   ADDED update. Posts are spaced (the next waits for the previous to be delivered), so each
   lag is that of one post to a thousand sockets, not of a backlog.

The bench leaves the world as it found it: its posts are deleted through the API (which
also takes them out of timelines), the celebrity's fan-out mode is put back if the bench's
threshold changed it, and the subscribers' `last_seen_at` (which a live viewer refreshes)
is restored.

Modules: options, load (the load-generator process), api (GraphQL over HTTP, as the bench
speaks it), base (the bench's state), graph (choosing and restoring authors and subscribers),
serving (the API process under test), figures and report, and measure (the run in order).
"""

from homefeed.bench.live.api import LEGACY_WS, TRANSPORT_WS
from homefeed.bench.live.measure import run
from homefeed.bench.live.options import LiveOptions
from homefeed.bench.live.report import LiveReport

__all__ = ["LEGACY_WS", "TRANSPORT_WS", "LiveOptions", "LiveReport", "run"]

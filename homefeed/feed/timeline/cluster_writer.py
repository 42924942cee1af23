"""The fan-out bulk writer on a Redis Cluster: keys grouped by master, one pipeline in flight per master.

Each master gets its own BulkWriter connection (bulk_writer.py), so the masters work in
parallel while each still sees batches back to back. A key answered with MOVED goes again to
the slot's new owner (the map is updated); with ASK (its slot is being migrated) to the
importing node behind ASKING. APPEND and EXPIRE are idempotent for readers (a repeated id is
deduplicated), so resending a command whose fate is unknown is safe.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from homefeed.feed.timeline.bulk_writer import BulkWriter, integers
from homefeed.feed.timeline.reads import command
from homefeed.feed.timeline.slots import Address, SlotMap, key_slot, node_url, redirect_of

# Rounds of redirects one call follows before giving up (a slot moves once per migration).
MAX_ROUNDS = 5
# How long a replication barrier waits for a replica before going on without it (a replica
# lagging this much, or still loading, is not waited for: the guarantee lapses, the fan-out goes on).
REPLICA_WAIT_MS = 500


class ClusterBulkWriter(BulkWriter):
    """BulkWriter's appends, routed by slot over one connection per master."""

    def __init__(self, slots: SlotMap) -> None:
        super().__init__(slots.seed_url)
        self._slots = slots
        self._writers: dict[Address, BulkWriter] = {}

    async def _send_each(
        self, keys: Sequence[bytes], head: Sequence[bytes], tail: Sequence[bytes]
    ) -> list[int]:
        owners = await self._slots.owners()
        slots = [key_slot(k) for k in keys]
        replies: list[int | ResponseError] = [0] * len(keys)
        # (node, behind ASKING) -> indexes of the keys to send there this round
        route: dict[tuple[Address, bool], list[int]] = defaultdict(list)
        for i, slot in enumerate(slots):
            route[(owners[slot], False)].append(i)
        for _ in range(MAX_ROUNDS):
            groups = list(route.items())
            results = await asyncio.gather(
                *(
                    self._node_writer(node).send_each([keys[i] for i in indexes], head, tail, asking=asking)
                    for (node, asking), indexes in groups
                ),
                return_exceptions=True,
            )
            route = defaultdict(list)
            failure: BaseException | None = None
            for ((_, _), indexes), result in zip(groups, results, strict=True):
                if isinstance(result, BaseException):
                    # A master down: the job fails and is retried once the cluster has failed over.
                    failure = failure or result
                    continue
                for i, reply in zip(indexes, result, strict=True):
                    redirect = redirect_of(reply) if isinstance(reply, ResponseError) else None
                    if redirect is None:
                        replies[i] = reply
                        continue
                    self._slots.moved(redirect)
                    route[(redirect.address, redirect.ask)].append(i)
            if failure is not None:
                if isinstance(failure, OSError | RedisConnectionError):
                    self._slots.unreachable()
                raise failure
            if not route:
                return integers(replies)
        raise RedisConnectionError(f"slots kept moving: gave up after {MAX_ROUNDS} rounds of redirects")

    async def replicated(self) -> None:
        """A replication barrier on every master: wait until a replica has all it has applied so far.

        WAIT covers its own connection's writes, so the barrier first writes a key of that master's
        slots: replication keeps order, so once the replica has the barrier it has everything
        applied before it (by any connection). A master without an online replica is skipped
        (a failover has nothing to promote); a replica slower than REPLICA_WAIT_MS is not waited
        for further.
        """
        masters = await self._slots.masters()
        await asyncio.gather(
            *(
                self._barrier(address, tag, replicas)
                for address, (tag, replicas) in masters.items()
                if replicas
            )
        )

    async def _barrier(self, address: Address, tag: bytes, replicas: int) -> None:
        key = b"homefeed:replicated:{" + tag + b"}"
        payload = command([b"SET", key, b"1", b"PX", b"60000"]) + command(
            [b"WAIT", b"%d" % min(replicas, 1), b"%d" % REPLICA_WAIT_MS]
        )
        try:
            replies = await self._node_writer(address).commands(payload, 2)
        except (OSError, RedisConnectionError):
            self._slots.unreachable()
            raise
        for reply in replies:
            redirect = redirect_of(reply) if isinstance(reply, ResponseError) else None
            if redirect is not None:
                self._slots.moved(redirect)  # the barrier's slot moved: the next job uses the new map
            elif isinstance(reply, ResponseError):
                raise reply

    def _node_writer(self, address: Address) -> BulkWriter:
        writer = self._writers.get(address)
        if writer is None:
            writer = self._writers[address] = BulkWriter(node_url(self._slots.seed_url, address))
        return writer

    async def close(self) -> None:
        """Close every master's connection (the next call reconnects)."""
        writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            await writer.close()

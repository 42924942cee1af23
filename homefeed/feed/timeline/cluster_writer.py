"""The fan-out bulk writer on a Redis Cluster: keys grouped by master, one pipeline in flight per master.

Each master gets its own BulkWriter connection (bulk_writer.py), so the masters work in
parallel while each still sees batches back to back. A key answered with MOVED goes again to
the slot's new owner (the map is updated); with ASK (its slot is being migrated) to the
importing node behind ASKING. APPEND and EXPIRE are idempotent for readers (a repeated id is
deduplicated), so resending a command whose fate is unknown is safe.

Routing is on the fan-out's hot path (every timeline write of every post), so it is done in
bulk: slots from the callers' ids (slots.id_slots) when they give them, masters as small
indexes (SlotMap.routes), one pass to group the keys, and each master's replies read in the
order its keys were sent, with no per-key bookkeeping unless a reply is an error.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from homefeed.feed.timeline.bulk_writer import REPLY_TIMEOUT, Appended, BulkWriter, Replies, appended
from homefeed.feed.timeline.reads import command
from homefeed.feed.timeline.slots import Address, SlotMap, id_slots, key_slot, node_url, redirect_of

# Rounds of redirects one call follows before giving up (a slot moves once per migration).
MAX_ROUNDS = 5
# How long a replication barrier waits for a replica. One lagging more fails the barrier: the
# batch's jobs are redone until it catches up, or until the cluster marks it failed (then its
# master has no online replica and is not waited for).
REPLICA_WAIT_MS = 500


class ReplicaLagging(RedisConnectionError):
    """A replication barrier timed out: the master's replica does not hold its writes yet."""


# (master, behind ASKING) -> the keys to send there, in order
Route = dict[tuple[Address, bool], list[bytes]]
# Per group sent: its keys that were answered, and their integer replies, in the same order
Answered = list[tuple[list[bytes], list[int]]]


class ClusterBulkWriter(BulkWriter):
    """BulkWriter's appends, routed by slot over one connection per master."""

    def __init__(self, slots: SlotMap, timeout: float = REPLY_TIMEOUT) -> None:
        super().__init__(slots.seed_url, timeout)
        self._slots = slots
        self._writers: dict[Address, BulkWriter] = {}

    async def append(
        self,
        keys: Sequence[bytes],
        entry: bytes,
        *,
        ttl: int,
        max_bytes: int,
        tags: Sequence[int] | None = None,
    ) -> Appended:
        """BulkWriter.append, each master's share of the keys on its own connection, all at once.

        A master that fails (down, or an error reply) does not stop the others: their keys are
        written, the keys this call created there get their expiry, and then the first failure
        is raised (the job is retried; its appends are idempotent).
        """
        answered, failure = await self._each_master(await self._route(keys, tags), [b"APPEND"], [entry])
        created: list[bytes] = []
        overgrown: list[bytes] = []
        for sent, lengths in answered:
            made, grown = appended(sent, lengths, len(entry), max_bytes)
            created += made
            overgrown += grown
        if created:
            # Before raising: a retried APPEND finds these keys existing and would not expire them.
            _, expiring = await self._each_master(await self._route(created), [b"EXPIRE"], [b"%d" % ttl])
            failure = failure or expiring
        if failure is not None:
            raise failure
        return Appended(written=len(keys), overgrown=overgrown)

    async def _send_each(
        self, keys: Sequence[bytes], head: Sequence[bytes], tail: Sequence[bytes]
    ) -> list[int]:
        """BulkWriter._send_each routed by slot (a key given twice gets one of its replies)."""
        answered, failure = await self._each_master(await self._route(keys), head, tail)
        if failure is not None:
            raise failure
        by_key = {key: reply for sent, replies in answered for key, reply in zip(sent, replies, strict=True)}
        return [by_key[key] for key in keys]

    async def _route(self, keys: Sequence[bytes], tags: Sequence[int] | None = None) -> Route:
        """The keys grouped by the master of their slot, each group in the keys' order."""
        index, masters = await self._slots.routes()
        slots = id_slots(tags) if tags is not None else map(key_slot, keys)
        groups: list[list[bytes]] = [[] for _ in masters]
        adds = [group.append for group in groups]
        for key, master in zip(keys, map(index.__getitem__, slots), strict=True):
            adds[master](key)
        return {(address, False): group for address, group in zip(masters, groups, strict=True) if group}

    async def _each_master(
        self, route: Route, head: Sequence[bytes], tail: Sequence[bytes]
    ) -> tuple[Answered, BaseException | None]:
        """Send `head + [key] + tail` for every routed key, a pipeline per master at once.

        Follows MOVED and ASK for the keys that get them. Returns what was answered, and the
        first failure (a master that could not be reached, a reply that is an error).
        """
        answered: Answered = []
        failure: BaseException | None = None
        for _ in range(MAX_ROUNDS):
            groups = list(route.items())
            results = await asyncio.gather(
                *(
                    self._node_writer(node).send_each(keys, head, tail, asking=asking)
                    for (node, asking), keys in groups
                ),
                return_exceptions=True,
            )
            route = defaultdict(list)
            for (_, keys), result in zip(groups, results, strict=True):
                if isinstance(result, BaseException):
                    # A master down: the job fails and is retried once the cluster has failed over.
                    failure = failure or result
                    continue
                if result.error is not None:
                    keys, result = self._redirect(keys, result, route)
                    failure = failure or result.error
                answered.append((keys, result.replies))  # type: ignore[arg-type]  # no error left in place
            if not route:
                if isinstance(failure, OSError | RedisConnectionError):
                    self._slots.unreachable()
                return answered, failure
        raise RedisConnectionError(f"slots kept moving: gave up after {MAX_ROUNDS} rounds of redirects")

    def _redirect(self, keys: list[bytes], sent: Replies, route: Route) -> tuple[list[bytes], Replies]:
        """Route the redirected keys again; the rest, their integer replies, and the first other error."""
        kept: list[bytes] = []
        replies: list[int | ResponseError] = []
        error: ResponseError | None = None
        for key, reply in zip(keys, sent.replies, strict=True):
            if not isinstance(reply, ResponseError):
                kept.append(key)
                replies.append(reply)
                continue
            redirect = redirect_of(reply)
            if redirect is None:
                error = error or reply
                continue
            self._slots.moved(redirect)
            route[(redirect.address, redirect.ask)].append(key)
        return kept, Replies(replies, error)

    async def replicated(self) -> None:
        """A replication barrier on every master: wait until a replica has all it has applied so far.

        WAIT covers its own connection's writes, so the barrier first writes a key of that master's
        slots: replication keeps order, so once the replica has the barrier it has everything
        applied before it (by any connection). A master without an online replica is skipped
        (a failover has nothing to promote); a replica that has not caught up within
        REPLICA_WAIT_MS fails the barrier (ReplicaLagging), so the batch's jobs are redone.
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
        stored, acknowledged = replies
        if isinstance(stored, ResponseError):
            redirect = redirect_of(stored)
            if redirect is None:
                raise stored
            # The barrier key's slot moved (the next barrier uses the new map). WAIT still covers
            # this connection's own appends to the master, which are what this worker wrote there.
            self._slots.moved(redirect)
        if isinstance(acknowledged, ResponseError):
            raise acknowledged
        if acknowledged < min(replicas, 1):
            # WAIT timed out: no replica has these writes yet, so a failover now would take them
            # back. The jobs stay in the outbox and are redone (their appends are idempotent).
            raise ReplicaLagging(f"no replica of {address} acknowledged within {REPLICA_WAIT_MS} ms")

    def _node_writer(self, address: Address) -> BulkWriter:
        writer = self._writers.get(address)
        if writer is None:
            url = node_url(self._slots.seed_url, address)
            writer = self._writers[address] = BulkWriter(url, self._timeout)
        return writer

    async def close(self) -> None:
        """Close every master's connection (the next call reconnects)."""
        writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            await writer.close()

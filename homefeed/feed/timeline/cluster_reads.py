"""The read path's lean GETs on a Redis Cluster: one pipelined connection per master, routed by slot.

The same calls as RedisReads (reads.py), each sent to the master of its key's slot on that
master's own RedisReads connection, so concurrent reads still pipeline, now one connection
per node. A MOVED reply updates the slot map and the command goes to the new owner; an ASK
reply (a slot being migrated) sends it once more to the importing node behind ASKING. A node
that cannot be reached fails the read like a single server would (the feed answers from
PostgreSQL) and makes the next read reload the map, which names the promoted replica once the
cluster has failed over.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from homefeed.feed.timeline.reads import RedisReads, command, get_commands, values_and_ttl
from homefeed.feed.timeline.slots import Address, SlotMap, key_slot, node_url, redirect_of

ASKING = command([b"ASKING"])
# Redirects one command follows before giving up (a slot moves once per migration).
MAX_REDIRECTS = 5


class ClusterReads:
    """RedisReads' calls on a cluster: a connection per master, each command sent to its slot's owner."""

    def __init__(self, slots: SlotMap, timeout: float = 5.0) -> None:
        self._slots = slots
        self._timeout = timeout
        self._nodes: dict[Address, RedisReads] = {}

    async def get(self, key: str) -> bytes | None:
        """The value of a string key (None when missing)."""
        (reply,) = await self._routed(key.encode(), [command([b"GET", key.encode()])])
        assert reply is None or isinstance(reply, bytes)
        return reply

    async def get_with_ttl(self, key: str) -> tuple[bytes | None, int]:
        """The value of a string key and its seconds to expiry (-1: none, -2: missing), in one write."""
        raw = key.encode()
        got, seconds = await self._routed(raw, [command([b"GET", raw]), command([b"TTL", raw])])
        assert (got is None or isinstance(got, bytes)) and isinstance(seconds, int)
        return got, seconds

    async def get_all(
        self, keys: Sequence[str], *, ttl_of_last: bool = False
    ) -> tuple[list[bytes | None], int]:
        """RedisReads.get_all; the keys must share a slot (one user's keys share a hash tag)."""
        payloads = get_commands(keys, ttl_of_last=ttl_of_last)
        return values_and_ttl(await self._routed(keys[0].encode(), payloads), ttl_of_last)

    async def call(self, *args: bytes) -> object:
        """Any single-key command (its key second, as in APPEND key value)."""
        (reply,) = await self._routed(args[1], [command(args)])
        return reply

    async def _routed(self, key: bytes, payloads: Sequence[bytes]) -> list[object]:
        slot = key_slot(key)
        address = await self._slots.owner(slot)
        asking = False
        for _ in range(MAX_REDIRECTS):
            node = self._node(address)
            try:
                # ASKING lets only the one command after it in: each command gets its own.
                sent = [p for payload in payloads for p in (ASKING, payload)] if asking else payloads
                replies = await node.send_many(sent)
            except (RedisConnectionError, RedisTimeoutError):
                self._slots.unreachable()
                raise
            if asking:
                replies = replies[1::2]
            redirects = [redirect_of(r) for r in replies if isinstance(r, ResponseError)]
            redirect = next((r for r in redirects if r is not None), None)
            if redirect is None:
                for reply in replies:
                    if isinstance(reply, ResponseError):
                        raise reply
                return replies
            self._slots.moved(redirect)
            address, asking = redirect.address, redirect.ask
        raise RedisConnectionError(f"slot {slot} kept moving: gave up after {MAX_REDIRECTS} redirects")

    def _node(self, address: Address) -> RedisReads:
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = RedisReads(node_url(self._slots.seed_url, address), self._timeout)
        return node

    def close(self) -> None:
        """Close every node's connection (the next read reconnects)."""
        for node in self._nodes.values():
            node.close()
        self._nodes.clear()

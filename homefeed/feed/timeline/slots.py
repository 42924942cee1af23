"""Routing by hash slot on a Redis Cluster, for the fast paths that bypass redis-py.

A key's slot is CRC16 (XMODEM, which `binascii.crc_hqx` computes in C) of its hash tag,
modulo 16384. The slot map comes from `CLUSTER SHARDS`, asked of any node the process
knows; it is reloaded when a node answers MOVED, or when a node cannot be reached (a
failed master: its replica is promoted and the map names it once the cluster agrees).
"""

from __future__ import annotations

import asyncio
import binascii
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import and_
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

SLOTS = 16384
# A failing node makes every caller ask for a new map: one reload at a time, at most this often.
MIN_RELOAD_SECONDS = 0.1


def key_slot(key: bytes) -> int:
    """The hash slot of a key (of its `{tag}` when it has a non-empty one)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % SLOTS


def id_slots(ids: Iterable[int]) -> Iterator[int]:
    """The slots of keys whose hash tag is a decimal id (`{123}`), in bulk.

    Fan-out routes thousands of timelines a step: mapped C functions (format, CRC16, mask)
    take a fraction of `key_slot`'s per-key search for the tag.
    """
    tags = map(b"%d".__mod__, ids)
    return map(and_, map(binascii.crc_hqx, tags, repeat(0)), repeat(SLOTS - 1))


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Address:
        """From `host:port` (as MOVED and ASK replies name a node)."""
        host, _, port = text.rpartition(":")
        return cls(host, int(port))


@dataclass(frozen=True, slots=True)
class Redirect:
    """A MOVED or ASK reply: the slot lives (for good, or during a migration) at `address`."""

    ask: bool
    slot: int
    address: Address


def redirect_of(error: ResponseError) -> Redirect | None:
    """The redirect an error reply carries, if it is one."""
    parts = str(error).split()
    if len(parts) == 3 and parts[0] in ("MOVED", "ASK"):
        return Redirect(parts[0] == "ASK", int(parts[1]), Address.parse(parts[2]))
    return None


def node_url(seed_url: str, address: Address) -> str:
    """The seed URL with its host and port replaced (credentials and scheme kept, database 0)."""
    parts = urlsplit(seed_url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@{address}" if auth else str(address)
    return urlunsplit(parts._replace(netloc=netloc, path="/0"))


class SlotMap:
    """Which master serves each slot, as the cluster last said."""

    def __init__(self, seed_url: str) -> None:
        # One node's URL, or several comma-separated (HOMEFEED_REDIS_URL): each is a seed;
        # the first gives the scheme and credentials for every node.
        urls = [u.strip() for u in seed_url.split(",") if u.strip()]
        self.seed_url = urls[0]
        self._seeds = [
            Address(parts.hostname or "127.0.0.1", parts.port or 6379) for parts in map(urlsplit, urls)
        ]
        self._owners: list[Address] | None = None
        # The same map as indexes into a list of masters (derived from _owners when first asked).
        self._routes: tuple[list[int], list[Address]] | None = None
        # Each master: a hash tag of one of its slots, and how many online replicas it has.
        self._masters: dict[Address, tuple[bytes, int]] = {}
        self._loading: asyncio.Task[None] | None = None
        self._loaded_at = 0.0
        self._stale = False

    async def owner(self, slot: int) -> Address:
        """The master serving a slot."""
        if self._owners is None or self._stale:
            await self.reload()
        assert self._owners is not None
        return self._owners[slot]

    async def owners(self) -> list[Address]:
        """The whole map: the master of each slot."""
        if self._owners is None or self._stale:
            await self.reload()
        assert self._owners is not None
        return self._owners

    async def routes(self) -> tuple[list[int], list[Address]]:
        """The map for bulk routing: each slot's master as an index into the list of masters.

        Grouping by a small int is cheaper than hashing an address per key.
        """
        owners = await self.owners()
        routes = self._routes
        if routes is None:
            masters = list(dict.fromkeys(owners))
            index = {address: i for i, address in enumerate(masters)}
            routes = self._routes = ([index[a] for a in owners], masters)
        return routes

    async def masters(self) -> dict[Address, tuple[bytes, int]]:
        """Every master: a hash tag that lands in one of its slots, and its online replicas."""
        if self._owners is None or self._stale:
            await self.reload()
        return self._masters

    def moved(self, redirect: Redirect) -> None:
        """A node said a slot moved for good: use the new owner now, and reload the rest soon."""
        if not redirect.ask and self._owners is not None:
            self._owners[redirect.slot] = redirect.address
            self._routes, self._stale = None, True

    def unreachable(self) -> None:
        """A node could not be reached: reload before the next use (its slots may have a new master)."""
        self._stale = True

    async def reload(self) -> None:
        """Ask the cluster for the map again (single-flight, at most every MIN_RELOAD_SECONDS)."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        loading = self._loading
        try:
            await asyncio.shield(loading)
        finally:
            if loading.done():
                self._loading = None

    async def _load(self) -> None:
        wait = self._loaded_at + MIN_RELOAD_SECONDS - time.monotonic()
        if wait > 0 and self._owners is not None:
            await asyncio.sleep(wait)
        known = list(dict.fromkeys([*self._seeds, *(set(self._owners or ()))]))
        error: Exception | None = None
        for address in known:
            client = Redis.from_url(
                node_url(self.seed_url, address), socket_timeout=2, socket_connect_timeout=1
            )
            try:
                shards = await client.execute_command("CLUSTER", "SHARDS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                error = exc
                continue
            finally:
                await client.aclose()
            owners = _owners_from_shards(shards, self._owners)
            if owners is None:
                error = RedisConnectionError(f"{address} does not know a master for every slot yet")
                continue
            self._owners, self._stale, self._loaded_at = owners, False, time.monotonic()
            self._routes = None
            self._masters = _masters(owners, _replicas_from_shards(shards))
            return
        raise RedisConnectionError(f"no cluster node answered CLUSTER SHARDS: {error}")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _owners_from_shards(shards: Sequence[object], previous: list[Address] | None) -> list[Address] | None:
    """Each slot's master, from a CLUSTER SHARDS reply.

    A shard whose master failed keeps naming it until a replica is promoted: its slots are
    then sent there and fail (callers fall back to PostgreSQL) while the others are served.
    A slot no shard claims keeps its previous owner; None if there is none.
    """
    owners: list[Address | None] = list(previous) if previous is not None else [None] * SLOTS
    for shard in shards:
        fields = _as_dict(shard)
        ranges = [int(s) for s in fields.get("slots", [])]  # type: ignore[attr-defined]
        master = None
        for node in fields.get("nodes", []):  # type: ignore[attr-defined]
            info = _as_dict(node)
            if _text(info.get("role")) == "master" and (
                master is None or _text(info.get("health")) == "online"
            ):
                host = _text(info.get("endpoint") or info.get("ip"))
                master = Address(host, int(info["port"]))  # type: ignore[call-overload]
        if master is None:
            continue
        for start, end in zip(ranges[::2], ranges[1::2], strict=True):
            owners[start : end + 1] = [master] * (end - start + 1)
    if any(o is None for o in owners):
        return None
    return [o for o in owners if o is not None]


def _replicas_from_shards(shards: Sequence[object]) -> dict[Address, int]:
    """Replicas per online master, not counting failed ones.

    A replica in sync but not yet sent a write reports "loading" (its offset is 0), so only
    "fail" is left out.
    """
    replicas: dict[Address, int] = {}
    for shard in shards:
        nodes = [_as_dict(n) for n in _as_dict(shard).get("nodes", [])]  # type: ignore[attr-defined]
        online = [n for n in nodes if _text(n.get("health")) != "fail"]
        for node in online:
            if _text(node.get("role")) == "master" and _text(node.get("health")) == "online":
                address = Address(_text(node.get("endpoint") or node.get("ip")), int(node["port"]))  # type: ignore[call-overload]
                replicas[address] = sum(1 for n in online if _text(n.get("role")) == "replica")
    return replicas


def _masters(owners: list[Address], replicas: dict[Address, int]) -> dict[Address, tuple[bytes, int]]:
    """For each master in the map, the first small number whose slot it owns (a hash tag), and replicas."""
    found: dict[Address, tuple[bytes, int]] = {}
    wanted = set(owners)
    tag = 0
    while len(found) < len(wanted):
        text = b"%d" % tag
        owner = owners[key_slot(text)]
        if owner not in found:
            found[owner] = (text, replicas.get(owner, 0))
        tag += 1
    return found


def _as_dict(value: object) -> dict[str, object]:
    """A RESP3 map or a RESP2 flat list of key, value pairs, keyed by text."""
    if isinstance(value, dict):
        return {_text(k): v for k, v in value.items()}
    assert isinstance(value, list)
    return {_text(k): v for k, v in zip(value[::2], value[1::2], strict=True)}

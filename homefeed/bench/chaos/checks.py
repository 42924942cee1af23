"""The end-of-run checks, once the traffic stopped and the outbox drained.

- Every acknowledged post that is not deleted is in every compared feed that should have it.
- Every compared feed equals the PostgreSQL pull query, page by page, read through the API
  with its cursors.
- Every subscriber saw each post meant for it as ADDED, or resynced after it.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homefeed.bench.chaos.client import FEED, Client, pk_of
from homefeed.bench.chaos.fleet import Fleet
from homefeed.bench.chaos.ledger import Ledger
from homefeed.bench.chaos.subscribers import Seen
from homefeed.bench.chaos.world import World
from homefeed.feed.store.pull import pull_ids


@dataclass
class Feed:
    """One viewer's feed as the API paged it, and as the pull query pages it at the same cursors."""

    viewer: int
    api: list[int] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)
    differing_page: int | None = None  # the first page that differs
    unread: str | None = None  # why the API could not be read


@dataclass
class Findings:
    """What the checks found; the report turns it into figures."""

    feeds: list[Feed]
    acked_live: set[int]  # acknowledged and not deleted, per PostgreSQL
    missing_in_db: list[int]  # acknowledged, yet no row at all
    lost: dict[int, list[int]]  # post -> compared viewers whose feed lacks it
    duplicated: dict[int, list[int]]  # viewer -> posts shown twice
    subscriber_expected: int = 0
    subscriber_misses: list[dict[str, Any]] = field(default_factory=list)


async def settle(pool: asyncpg.Pool, within: float) -> int:
    """Wait until the outbox is empty (fan-out done); the jobs still left when time ran out."""
    deadline = time.monotonic() + within
    while True:
        left: int = await pool.fetchval("SELECT count(*) FROM outbox")
        if left == 0 or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)


async def check(
    pool: asyncpg.Pool,
    client: Client,
    fleet: Fleet,
    world: World,
    ledger: Ledger,
    seen: list[Seen],
    viewers: int,
    pages: int,
    page_size: int,
    seed: int,
) -> Findings:
    """Compare feeds with the pull query, look for every acknowledged post, and audit the subscribers."""
    acked = sorted(ledger.posts)
    rows = await pool.fetch(
        "SELECT id, deleted_at IS NULL AS live FROM posts WHERE id = ANY($1::bigint[])", acked
    )
    present = {r["id"]: r["live"] for r in rows}
    acked_live = {pk for pk, live in present.items() if live}
    floor = acked[0] if acked else 0
    rng = random.Random(seed + 3)
    chosen = [s.user for s in seen]
    others = [u for u in world.cast if u not in set(chosen)]
    chosen += rng.sample(others, max(0, min(len(others), viewers - len(chosen))))
    gate = asyncio.Semaphore(8)

    async def one(viewer: int) -> Feed:
        async with gate:
            return await _page(pool, client, fleet, world.tokens[viewer], viewer, floor, pages, page_size)

    feeds = await asyncio.gather(*(one(v) for v in chosen))
    lost: dict[int, list[int]] = {}
    duplicated: dict[int, list[int]] = {}
    for feed in feeds:
        shown = set(feed.api)
        for pk in set(feed.expected) - shown:
            if pk in acked_live:
                lost.setdefault(pk, []).append(feed.viewer)
        twice = sorted({pk for pk in feed.api if feed.api.count(pk) > 1})
        if twice:
            duplicated[feed.viewer] = twice
    findings = Findings(
        feeds=list(feeds),
        acked_live=acked_live,
        missing_in_db=[pk for pk in acked if pk not in present],
        lost=lost,
        duplicated=duplicated,
    )
    _audit_subscribers(findings, ledger, seen)
    return findings


async def _page(
    pool: asyncpg.Pool,
    client: Client,
    fleet: Fleet,
    token: str,
    viewer: int,
    floor: int,
    pages: int,
    page_size: int,
) -> Feed:
    """Page the viewer's feed down past the run's first post, beside the pull query's pages."""
    feed = Feed(viewer)
    after: str | None = None
    before: int | None = None
    for page in range(pages):
        reply = None
        for _ in range(5):
            urls = fleet.urls()
            if urls:
                reply = await client.call(
                    urls[page % len(urls)][1], FEED, {"first": page_size, "after": after}, token
                )
                if reply.ok:
                    break
            await asyncio.sleep(0.5)
        if reply is None or not reply.ok or reply.data is None:
            feed.unread = reply.failure if reply else "no API running"
            return feed
        connection = reply.data["homeFeed"]
        ids = [pk_of(e["node"]["id"]) for e in connection["edges"]]
        expected = await pull_ids(pool, viewer, before, page_size)
        if ids != expected and feed.differing_page is None:
            feed.differing_page = page
        feed.api += ids
        feed.expected += expected
        if not connection["pageInfo"]["hasNextPage"] or not ids or ids[-1] < floor:
            break
        after, before = connection["pageInfo"]["endCursor"], ids[-1]
    return feed


def _audit_subscribers(findings: Findings, ledger: Ledger, seen: list[Seen]) -> None:
    """A post meant for a subscriber (in its final feed, acknowledged during the run) must have
    reached it as ADDED, or be followed by a RESYNC or a reconnect's refetch."""
    expected = {f.viewer: set(f.expected) for f in findings.feeds}
    for s in seen:
        catchups = sorted(s.resyncs + s.reconnects)
        for pk in sorted(expected.get(s.user, set()) & findings.acked_live):
            post = ledger.posts.get(pk)
            if post is None or post.acked_at < ledger.started:
                continue
            findings.subscriber_expected += 1
            if pk in s.added or any(t >= post.acked_at for t in catchups):
                continue
            findings.subscriber_misses.append(
                {"subscriber": s.user, "post": pk, "author": post.author, "acked_at": post.acked_at}
            )

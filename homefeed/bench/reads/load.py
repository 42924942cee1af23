"""The read bench's load generator, a process of its own: keep-alive sessions of home-feed pages."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import orjson

FEED = """query HomeFeed($first: Int, $after: String, $order: FeedOrder) {
  homeFeed(first: $first, after: $after, order: $order) {
  edges { cursor node { id text createdAt likeCount viewerHasLiked
                        author { id handle displayName viewerFollows } } }
  pageInfo { hasNextPage endCursor } } }"""
FEED_HASH = hashlib.sha256(FEED.encode()).hexdigest()
# Of each session's deeper pages (after the first): how often 0, 1, 2 or 3 are read.
DEPTH_WEIGHTS = (0.4, 0.2, 0.2, 0.2)


@dataclass(frozen=True)
class Plan:
    """What the load generator is told."""

    host: str
    port: int
    viewers: list[tuple[int, str]]  # (user id, token)
    connections: int
    warmup: float
    seconds: float
    first: int
    depth: int
    seed: int
    # Send the feed query as Apollo's APQ does: its hash alone, the text once per miss.
    persisted: bool = False
    order: str = "LATEST"


@dataclass
class LoadResult:
    latencies_ms: list[float]
    first_pages: int
    deeper_pages: int
    errors: int
    error_sample: list[str]
    seconds: float
    cpu_s: float
    # The same latencies split: first pages (no cursor) and deeper ones.
    first_ms: list[float] = field(default_factory=list)
    deeper_ms: list[float] = field(default_factory=list)


PERSISTED_QUERY_NOT_FOUND = b"PERSISTED_QUERY_NOT_FOUND"

# Sent when recording starts and when it stops, so the parent samples the servers' CPU over
# exactly the measured seconds (this process's start-up and warm-up left out).
STARTED = "started"
STOPPED = "stopped"


def load_generator(conn: Connection, plan: Plan) -> None:
    """Entry point of the load-generator process: runs the plan, sends STARTED, STOPPED, a LoadResult."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    try:
        result = asyncio.run(_Load(plan, conn.send).run())
        conn.send(result)
    except BaseException as exc:
        conn.send(exc)
        raise
    finally:
        conn.close()


class _Load:
    """Keep-alive HTTP/1.1 over raw streams: a client library would cost CPU the server needs."""

    def __init__(self, plan: Plan, mark: Callable[[str], None]) -> None:
        self.plan = plan
        self.mark = mark
        self.recording = False
        self.stop = False
        self.latencies: list[float] = []
        self.first_ms: list[float] = []
        self.deeper_ms: list[float] = []
        self.first_pages = 0
        self.deeper_pages = 0
        self.errors = 0
        self.error_sample: list[str] = []

    async def run(self) -> LoadResult:
        tasks = [asyncio.create_task(self._connection(i)) for i in range(self.plan.connections)]
        await asyncio.sleep(self.plan.warmup)
        self.recording = True
        self.mark(STARTED)
        cpu0, t0 = _cpu(), time.perf_counter()
        await asyncio.sleep(self.plan.seconds)
        self.recording = False
        self.stop = True
        cpu1, t1 = _cpu(), time.perf_counter()
        self.mark(STOPPED)
        await asyncio.gather(*tasks, return_exceptions=True)
        return LoadResult(
            self.latencies,
            self.first_pages,
            self.deeper_pages,
            self.errors,
            self.error_sample,
            t1 - t0,
            cpu1 - cpu0,
            self.first_ms,
            self.deeper_ms,
        )

    def _request(self, token: str, after: str | None, *, text: bool = True) -> bytes:
        request: dict[str, object] = {
            "variables": {"first": self.plan.first, "after": after, "order": self.plan.order},
            "operationName": "HomeFeed",
        }
        if self.plan.persisted:
            request["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": FEED_HASH}}
        if text:
            request["query"] = FEED
        body = orjson.dumps(request)
        head = (
            f"POST /graphql HTTP/1.1\r\nHost: {self.plan.host}:{self.plan.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def _connection(self, index: int) -> None:
        rng = random.Random(self.plan.seed * 1000 + index)
        reader, writer = await asyncio.open_connection(self.plan.host, self.plan.port)
        try:
            while not self.stop:
                _, token = rng.choice(self.plan.viewers)
                deeper = rng.choices(range(len(DEPTH_WEIGHTS)), DEPTH_WEIGHTS)[0]
                after: str | None = None
                for page in range(min(deeper, self.plan.depth) + 1):
                    if self.stop:
                        break
                    recording = self.recording
                    started = time.perf_counter()
                    writer.write(self._request(token, after, text=not self.plan.persisted))
                    status, body = await _response(reader)
                    if self.plan.persisted and PERSISTED_QUERY_NOT_FOUND in body:
                        # This process has not seen the hash: register it, as Apollo Client does.
                        writer.write(self._request(token, after))
                        status, body = await _response(reader)
                    elapsed = time.perf_counter() - started
                    after = self._check(status, body)
                    if recording and self.recording:
                        self.latencies.append(elapsed * 1000)
                        if page == 0:
                            self.first_pages += 1
                            self.first_ms.append(elapsed * 1000)
                        else:
                            self.deeper_pages += 1
                            self.deeper_ms.append(elapsed * 1000)
                    if after is None:
                        break
        finally:
            writer.close()

    def _check(self, status: int, body: bytes) -> str | None:
        """The next page's cursor; None at the end of the feed or on an error (counted)."""
        try:
            doc = orjson.loads(body)
            if status != 200 or doc.get("errors"):
                raise ValueError(f"HTTP {status}: {body[:300]!r}")
            info = doc["data"]["homeFeed"]["pageInfo"]
            return info["endCursor"] if info["hasNextPage"] else None
        except (ValueError, KeyError, TypeError) as exc:
            if self.recording:
                self.errors += 1
                if len(self.error_sample) < 5:
                    self.error_sample.append(str(exc))
            return None


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

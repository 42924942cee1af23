"""PostgreSQL connection pools."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Coroutine, Mapping

import asyncpg
from asyncpg.connection import LoggedQuery
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# How long closing waits for statements still running to give their PostgreSQL connections back
# before it terminates them. asyncpg's Pool.close waits for every connection with no limit, and a
# process must stop within its grace period whatever a late task (one uvicorn cancelled after its
# own 30 s, a fan-out write on a hung Redis) still holds. Terminating loses nothing: an
# uncommitted transaction rolls back, and a fan-out job claimed but not finished comes back to
# the outbox when its lease ends.
POOL_CLOSE_SECONDS = 10.0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection without asyncpg's default reset statement.

    By default every release sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;`: one more round trip, and four statements for the server, per query. Nothing
    here leaves session state behind (locks are transaction-scoped or released in `finally`,
    settings are SET LOCAL, nothing LISTENs), and asyncpg still rolls back an open transaction.
    """


async def create_pool(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    on_query: Callable[[LoggedQuery], None] | None = None,
) -> asyncpg.Pool:
    """A pool for `url`; extra URL query parameters become server settings (asyncpg).

    `on_query` sees every statement each connection runs (tests count round trips with it).
    """

    async def init(conn: asyncpg.Connection) -> None:
        if on_query is not None:
            conn.add_query_logger(on_query)

    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=init,
        reset=_keep_session,
        # No JIT: every statement here is a short index-driven read or write, and a generic plan
        # whose estimate crossed jit_above_cost spent seconds compiling a ranked read's
        # features statement that runs in milliseconds.
        server_settings={"application_name": "homefeed", "jit": "off"},
    )
    assert pool is not None
    return pool


async def close_pool(pool: asyncpg.Pool, deadline: float) -> None:
    """Close the pool, waiting up to `deadline` seconds for connections in use, then terminate it."""
    try:
        # asyncio.timeout, not wait_for, which can lose a cancel that lands as the wait ends.
        async with asyncio.timeout(deadline):
            await pool.close()  # cancelled, it terminates the pool itself
    except TimeoutError:
        log.warning("closing: PostgreSQL connections still in use after %g s were terminated", deadline)
        pool.terminate()


MAX_LANES = 4
_SETTING = re.compile(r"[a-z_][a-z0-9_.]*")


def lane_share(pool: asyncpg.Pool) -> int:
    """How many of the pool's connections all of a process's lanes may hold together.

    Never more than half the pool less one: held lanes must leave the rest of the process
    connections (a pool of 1 or 2 gets no lanes, and statements go through the pool).
    """
    return max(0, (pool.get_max_size() - 1) // 2)


class Lanes:
    """A few pool connections held for the read path's single statements, handed out without the pool.

    asyncpg's `Pool.fetch` spends more client CPU per statement on the checkout (a queue, a
    timeout context, a shielded task per release) than on the statement itself on a held
    connection. The home-feed read is one statement,
    so it runs on one of a few connections taken from the pool on first need and kept; reads
    beyond `size` at once queue for the next free one. A connection whose statement was
    interrupted (cancelled, lost) goes back to the pool closed, and a new one is taken.
    """

    def __init__(
        self, pool: asyncpg.Pool, size: int | None = None, session: Mapping[str, str] | None = None
    ) -> None:
        self._pool = pool
        # Server settings for the held connections only, reset before they go back to the pool.
        self._session = dict(session or {})
        for name in self._session:
            if not _SETTING.fullmatch(name):
                raise ValueError(f"not a server setting name: {name!r}")
        fair = lane_share(pool)
        self._size = min(MAX_LANES, fair) if size is None else min(size, fair)
        self._held = 0
        self._idle: list[PoolConnectionProxy] = []
        self._waiters: deque[asyncio.Future[PoolConnectionProxy]] = deque()
        self._tasks: set[asyncio.Future[object]] = set()
        # Set by close: a connection given back after it goes back to the pool, not to _idle.
        self._closed = False

    @property
    def size(self) -> int:
        """How many connections these lanes hold at most (0: statements go through the pool)."""
        return self._size

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        """Run one statement and return its rows."""
        if self._size <= 0:
            return await self._pool.fetch(query, *args)
        conn = self._idle.pop() if self._idle else await self._take()
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        except asyncpg.PostgresError:
            self._give(conn)  # the server refused the statement: the connection is fine
            raise
        except BaseException:
            self._discard(conn)
            raise
        self._give(conn)
        return rows

    async def _take(self) -> PoolConnectionProxy:
        if self._held < self._size:
            self._held += 1
            try:
                return await self._acquire()
            except BaseException:
                self._held -= 1
                raise
        waiter: asyncio.Future[PoolConnectionProxy] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give(waiter.result())  # handed over just as this read was cancelled
            raise

    def _give(self, conn: PoolConnectionProxy) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if self._closed:
            # A read that was in flight when the lanes closed (shutdown does not wait for every
            # request: uvicorn cancels the late ones and goes on, and a shielded DataLoader batch
            # runs on). Kept in _idle, the connection would never be released, and Pool.close
            # waits for every connection: shutdown would hang for good.
            self._held -= 1
            self._spawn(self._return(conn))
            return
        self._idle.append(conn)

    def _discard(self, conn: PoolConnectionProxy) -> None:
        self._held -= 1
        conn.terminate()
        self._spawn(self._pool.release(conn))
        if self._waiters:
            # A queued read would otherwise wait for a connection that is not coming back.
            self._held += 1
            self._spawn(self._replace())

    async def _acquire(self) -> PoolConnectionProxy:
        conn: PoolConnectionProxy = await self._pool.acquire()
        try:
            if self._session:  # all of them in one round trip
                await conn.execute(
                    "SELECT set_config(n, v, false) FROM unnest($1::text[], $2::text[]) AS s(n, v)",
                    list(self._session),
                    list(self._session.values()),
                )
        except BaseException:
            await self._pool.release(conn)
            raise
        return conn

    async def _replace(self) -> None:
        try:
            conn = await self._acquire()
        except Exception as exc:
            self._held -= 1
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    break
            return
        self._give(conn)

    def _spawn(self, work: Coroutine[object, object, object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _return(self, conn: PoolConnectionProxy) -> None:
        """Reset the lanes' session settings on conn and release it to the pool."""
        # Names were checked against _SETTING when the lanes were made.
        reset = "; ".join(f"RESET {name}" for name in self._session)
        try:
            if reset:
                await conn.execute(reset)  # one simple-protocol round trip for them all
        except BaseException:
            conn.terminate()  # its settings could not be reset: it must not serve anyone else
            raise
        finally:
            await self._pool.release(conn)

    async def close(self) -> None:
        """Give the held connections back to the pool (before it closes); those in use go back
        as their statements end, and reads from now on go through the pool."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._held -= len(idle)
        for conn in idle:
            await self._return(conn)

"""Real servers for the suite: the ones named by HOMEFEED_DATABASE_URL / HOMEFEED_REDIS_URL, else embedded.

Every test that uses the servers runs twice: against that single Redis, and against a local
Valkey cluster of 3 masters and 3 replicas that the session starts from the embedded binary
(always the embedded one, whatever the URL names). Every test gets its own PostgreSQL schema
and Redis key prefix, so tests run in any order and never see each other's data.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from argon2 import PasswordHasher
from asyncpg.connection import LoggedQuery
from hypothesis import HealthCheck, settings

from homefeed.bench.valkey_cluster import LocalCluster, local_cluster
from homefeed.cli.embedded import servers_for
from homefeed.feed import config
from homefeed.feed.auth import Passwords
from homefeed.feed.config import Settings
from homefeed.feed.redis_client import RedisClient, client_name, open_redis
from homefeed.feed.services import Services, build_services
from homefeed.feed.store.pool import create_pool
from homefeed.migrations.runner import migrate
from tests.api import Api
from tests.standby import Pair, primary_with_standby

settings.register_profile(
    "homefeed",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("homefeed")

# Cheap hashing: the suite signs up hundreds of users; production keeps argon2's defaults.
# Cheap enough that the cap on concurrent hashing would only get in the way (tests of the cap
# build their own).
FAST_PASSWORDS = Passwords(
    PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1), concurrency=64, queue=100_000
)


@pytest.fixture(scope="session")
def single_servers() -> Iterator[Settings]:
    """Settings naming a running PostgreSQL and a single Redis for the whole session."""
    base = config.load()
    data_dir = Path(tempfile.mkdtemp(prefix="homefeed-test-"))
    with servers_for(base.with_(data_dir=data_dir)) as ready:
        yield ready


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[LocalCluster]:
    """A local 3-master, 3-replica Valkey cluster for the whole session (tests must not break it)."""
    with local_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pair() -> Iterator[Pair]:
    """An embedded PostgreSQL primary and a streaming standby of it, for the whole session."""
    with primary_with_standby() as started:
        yield started


@pytest.fixture
def on_cluster(request: pytest.FixtureRequest) -> bool:
    """Whether this run of the test is the one against the cluster."""
    callspec = getattr(request.node, "callspec", None)
    return bool(callspec is not None and callspec.params.get("servers") == "cluster")


@pytest.fixture
def single_redis(on_cluster: bool) -> None:
    """Skips the cluster run of a test about one server's connection or databases."""
    if on_cluster:
        pytest.skip("about a single Redis server's connection (the cluster's own tests cover routing)")


@pytest.fixture(scope="session", params=["single", "cluster"])
def servers(request: pytest.FixtureRequest, single_servers: Settings) -> Settings:
    """Settings naming PostgreSQL and a Redis: the single server, then the cluster."""
    if request.param == "single":
        return single_servers
    cluster: LocalCluster = request.getfixturevalue("valkey_cluster")
    return single_servers.with_(redis_url=cluster.url)


def with_search_path(url: str, schema: str) -> str:
    """The URL with `search_path` set, which asyncpg passes on as a server setting."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def delete_prefix(redis: RedisClient, prefix: str) -> None:
    """Delete every key under a test's prefix, on a single server or across the cluster's masters.

    Never FLUSHDB: the test Redis may be shared with other test runs, whose keys it would wipe.
    """
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


@contextlib.asynccontextmanager
async def isolated_settings(servers: Settings) -> AsyncIterator[Settings]:
    """Settings over servers with a fresh schema, migrated, and a fresh Redis key prefix; dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    assert servers.database_url and servers.redis_url
    conn = await asyncpg.connect(servers.database_url)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
    finally:
        await conn.close()
    isolated = servers.with_(
        database_url=with_search_path(servers.database_url, name),
        redis_prefix=name,
        jwt_secret="test-secret-" + "x" * 20,
        # No in-process caching of celebrity lists: tests read right after they write.
        celebrity_cache_ms=0,
        # Every test client comes from one address and may sign up, log in and read far more
        # than one person would: the request limits are off, except in the tests that turn
        # them on (tests/feed/test_limits.py, tests/schema/test_rate_limits.py). The write limit
        # stays on, as it always was.
        query_rate_limit=0,
        anonymous_rate_limit=0,
        log_in_limit=0,
        log_in_address_limit=0,
        sign_up_limit=0,
    )
    pool = await create_pool(isolated.database_url or "", min_size=1, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    yield isolated
    conn = await asyncpg.connect(servers.database_url)
    try:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
    finally:
        await conn.close()
    redis = await open_redis(servers.redis_url)
    try:
        await delete_prefix(redis, name)
    finally:
        await redis.aclose()


@pytest.fixture
async def settings_(servers: Settings) -> AsyncIterator[Settings]:
    """Settings for one test: a fresh schema, migrated, and a fresh Redis key prefix."""
    async with isolated_settings(servers) as isolated:
        yield isolated


@pytest.fixture
async def redis(settings_: Settings) -> AsyncIterator[RedisClient]:
    """A client of the test's Redis (a single server or the cluster, as the run is parametrized)."""
    assert settings_.redis_url
    client = await open_redis(settings_.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def services(settings_: Settings) -> AsyncIterator[Services]:
    """The engine over this test's schema and key prefix."""
    assert settings_.database_url and settings_.redis_url
    pool = await create_pool(settings_.database_url)
    # Named as open_services names them, so tests can tell this service's connections apart.
    redis = await open_redis(settings_.redis_url, name=client_name(settings_.redis_prefix))
    opened = build_services(settings_, pool, redis, passwords=FAST_PASSWORDS)
    try:
        yield opened
    finally:
        await opened.close()


ServicesFactory = Callable[..., Awaitable[Services]]


@pytest.fixture
async def make_services(settings_: Settings) -> AsyncIterator[ServicesFactory]:
    """Builds more engines over this test's schema and prefix, with some settings changed."""
    opened: list[Services] = []

    async def make(**changes: object) -> Services:
        changed = settings_.with_(**changes)
        assert changed.database_url and changed.redis_url
        pool = await create_pool(changed.database_url)
        redis = await open_redis(changed.redis_url)
        made = build_services(changed, pool, redis, passwords=FAST_PASSWORDS)
        opened.append(made)
        return made

    yield make
    for made in opened:
        await made.close()


@pytest.fixture
async def api(services: Services) -> AsyncIterator[Api]:
    """A GraphQL client talking to the ASGI app in-process."""
    async with Api.running(services) as client:
        yield client


# asyncpg resets a connection's session state when the pool takes it back: one statement per acquire.
POOL_RESET = "SELECT pg_advisory_unlock_all()"


@dataclass
class Counted:
    """The API over a one-connection pool that records every statement it sends."""

    api: Api
    services: Services
    statements: list[str]

    def queries(self) -> list[str]:
        """Statements since the last clear, without the pool's per-acquire reset."""
        return [s for s in self.statements if not s.startswith(POOL_RESET)]


@pytest.fixture
async def counted(settings_: Settings) -> AsyncIterator[Counted]:
    """For tests that count SQL statements (round trips, batching, refusal before any SQL)."""
    statements: list[str] = []

    def record(query: LoggedQuery) -> None:
        statements.append(query.query)

    assert settings_.database_url and settings_.redis_url
    # One connection: asyncpg introspects types once per connection, which would blur the count.
    pool = await create_pool(settings_.database_url, min_size=1, max_size=1, on_query=record)
    redis = await open_redis(settings_.redis_url)
    services = build_services(settings_, pool, redis, passwords=FAST_PASSWORDS)
    try:
        async with Api.running(services) as api:
            yield Counted(api, services, statements)
    finally:
        await services.close()

"""Rate limits as clients meet them: RATE_LIMITED with retryAfter (HTTP and websocket), HTTP 429
with Retry-After when a whole request is refused, and the victim of a log-in attack unharmed.

The suite's settings switch the request limits off (every test client shares one address);
each test here turns on the ones it checks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any, Literal

import pytest
import websockets
from argon2 import PasswordHasher

from homefeed.feed.auth import Passwords
from homefeed.feed.config import Settings
from homefeed.feed.services import Services, build_services
from homefeed.feed.store.pool import create_pool
from tests.api import Account, Api, Result
from tests.conftest import FAST_PASSWORDS, ServicesFactory
from tests.counting_redis import CountingRedis
from tests.server import running_server

LOG_IN = "mutation($h: String!, $p: String!) { logIn(handle: $h, password: $p) { token } }"
SIGN_UP = 'mutation($h: String!) { signUp(handle: $h, password: "password123") { token } }'
WHO = 'query { user(handle: "nobody") { id } }'
VIEWER = "query { viewer { id } }"
ATTACKER = ("203.0.113.9", 4000)
VICTIM = ("198.51.100.7", 5000)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


async def api_from(stack: AsyncExitStack, services: Services, client: tuple[str, int]) -> Api:
    return await stack.enter_async_context(Api.running(services, client=client))


def assert_limited(result: Result) -> int:
    """The answer is RATE_LIMITED everywhere, with an integer retryAfter; returns it."""
    assert result.data is None and result.codes == ["RATE_LIMITED"], result
    wait = result.errors[0]["extensions"]["retryAfter"]
    assert isinstance(wait, int) and wait >= 1
    return wait


async def test_the_victim_logs_in_while_an_attacker_guesses(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    # The reproduction: the log-in limit at 3, the attacker's 3 wrong tries, then the
    # victim's correct log-in from their own address.
    services = await make_services(log_in_limit=3, log_in_address_limit=100)
    attacker = await api_from(stack, services, ATTACKER)
    victim = await api_from(stack, services, VICTIM)
    await victim.sign_up("alice", "correct horse")
    for _ in range(3):
        wrong = await attacker.gql(LOG_IN, {"h": "alice", "p": "wrong guess"})
        assert wrong.codes == ["UNAUTHENTICATED"]
    # Same-address guesses are limited, even a right one, and say when to come back.
    assert assert_limited(await attacker.gql(LOG_IN, {"h": "alice", "p": "wrong guess"})) <= 15 * 60
    assert_limited(await attacker.gql(LOG_IN, {"h": "alice", "p": "correct horse"}))
    logged = (await victim.gql(LOG_IN, {"h": "alice", "p": "correct horse"})).ok()
    assert logged["logIn"]["token"]


@pytest.mark.parametrize("spelling", ["alice", "@alice", " ALICE ", "@Alice"])
async def test_every_spelling_of_a_handle_shares_one_bucket(
    make_services: ServicesFactory, stack: AsyncExitStack, spelling: str
) -> None:
    services = await make_services(log_in_limit=2, log_in_address_limit=100)
    api = await api_from(stack, services, ATTACKER)
    await api.sign_up("alice", "correct horse")
    await api.gql(LOG_IN, {"h": "@alice", "p": "wrong guess"})
    await api.gql(LOG_IN, {"h": "alice", "p": "wrong guess"})
    assert_limited(await api.gql(LOG_IN, {"h": spelling, "p": "correct horse"}))


async def test_one_address_cannot_guess_across_handles_forever(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    services = await make_services(log_in_limit=100, log_in_address_limit=4)
    attacker = await api_from(stack, services, ATTACKER)
    codes = [(await attacker.gql(LOG_IN, {"h": f"user{i}", "p": "guess1234"})).codes for i in range(6)]
    assert codes == [["UNAUTHENTICATED"]] * 4 + [["RATE_LIMITED"]] * 2
    victim = await api_from(stack, services, VICTIM)
    assert (await victim.gql(LOG_IN, {"h": "user1", "p": "guess1234"})).codes == ["UNAUTHENTICATED"]


async def test_sign_up_is_limited_per_address_by_the_hour_not_at_the_write_limit(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    services = await make_services(sign_up_limit=3, rate_limit_per_minute=1000)
    first = await api_from(stack, services, ATTACKER)
    for i in range(3):
        (await first.gql(SIGN_UP, {"h": f"new{i}"})).ok()
    wait = assert_limited(await first.gql(SIGN_UP, {"h": "new3"}))
    assert wait <= 3600
    other = await api_from(stack, services, VICTIM)
    (await other.gql(SIGN_UP, {"h": "new4"})).ok()


async def test_anonymous_queries_count_per_address_with_http_429(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    services = await make_services(anonymous_rate_limit=3, query_rate_limit=100)
    api = await api_from(stack, services, ATTACKER)
    for _ in range(3):
        assert (await api.gql(WHO)).ok() == {"user": None}
    response = await api.http.post("/graphql", json={"query": WHO})
    body = response.json()
    assert response.status_code == 429
    wait = body["errors"][0]["extensions"]["retryAfter"]
    assert response.headers["Retry-After"] == str(wait) and 1 <= wait <= 60
    assert body.get("data") is None and body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    # GET queries count too.
    got = await api.http.get("/graphql", params={"query": WHO})
    assert got.status_code == 429
    # A signed-in user at the same address has a budget of their own.
    alice = await api.sign_up("alice")
    assert (await api.gql(VIEWER, token=alice.token)).ok()["viewer"]["id"] == alice.id
    # So does another address.
    other = await api_from(stack, services, VICTIM)
    assert (await other.gql(WHO)).ok() == {"user": None}


async def test_signed_in_queries_count_per_user(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    services = await make_services(anonymous_rate_limit=100, query_rate_limit=2)
    api = await api_from(stack, services, ATTACKER)
    alice, bob = await api.sign_up("alice"), await api.sign_up("bob")
    for _ in range(2):
        (await api.gql(VIEWER, token=alice.token)).ok()
    assert_limited(await api.gql(VIEWER, token=alice.token))
    (await api.gql(VIEWER, token=bob.token)).ok()
    # A bad token is counted on the address, not on a user it does not prove to be.
    assert (await api.gql(VIEWER, token="not-a-token")).codes == ["UNAUTHENTICATED"]


async def test_a_limited_mutation_keeps_its_retry_after(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    services = await make_services(rate_limit_per_minute=1)
    api = await api_from(stack, services, ATTACKER)
    alice = await api.sign_up("alice")
    create = 'mutation { createPost(text: "hi") { id } }'
    (await api.gql(create, token=alice.token)).ok()
    response = await api.http.post(
        "/graphql", json={"query": create}, headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert response.status_code == 429
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(response.headers["Retry-After"]) == response.json()["errors"][0]["extensions"]["retryAfter"]


# --- one Redis round trip ----------------------------------------------------------------------


async def counted_services(settings: Settings, stack: AsyncExitStack, passwords: Passwords) -> Services:
    assert settings.database_url and settings.redis_url
    pool = await create_pool(settings.database_url)
    redis = CountingRedis.from_url(settings.redis_url)
    services = build_services(settings, pool, redis, passwords=passwords)
    stack.push_async_callback(services.close)
    return services


async def trips(services: Services, run: Callable[[], Any]) -> int:
    redis = services.redis
    assert isinstance(redis, CountingRedis)
    before = redis.round_trips
    await run()
    return redis.round_trips - before


ON = {
    "anonymous_rate_limit": 1000,
    "query_rate_limit": 1000,
    "log_in_limit": 1000,
    "log_in_address_limit": 1000,
    "sign_up_limit": 1000,
}
OFF = dict.fromkeys(ON, 0)


async def round_trips_per_request(services: Services, api: Api, suffix: str) -> dict[str, int]:
    alice = await api.sign_up(f"alice_{suffix}", "correct horse")
    log_in = {"h": alice.handle, "p": "correct horse"}
    return {
        "anonymous query": await trips(services, lambda: api.gql(WHO)),
        "signed-in query": await trips(services, lambda: api.gql(VIEWER, token=alice.token)),
        "logIn": await trips(services, lambda: api.gql(LOG_IN, log_in)),
        "signUp": await trips(services, lambda: api.gql(SIGN_UP, {"h": f"bob_{suffix}"})),
    }


@pytest.mark.usefixtures("single_redis")  # counts one client's round trips to one server
async def test_the_limiter_adds_one_redis_round_trip_per_request(
    settings_: Settings, stack: AsyncExitStack
) -> None:
    # The same requests with the limits on and off: the difference is the limiter's cost.
    on = await counted_services(settings_.with_(**ON), stack, FAST_PASSWORDS)
    off = await counted_services(settings_.with_(**OFF), stack, FAST_PASSWORDS)
    with_limits = await round_trips_per_request(on, await api_from(stack, on, ATTACKER), "on")
    without = await round_trips_per_request(off, await api_from(stack, off, ATTACKER), "off")
    added = {request: with_limits[request] - without[request] for request in with_limits}
    assert added == {"anonymous query": 1, "signed-in query": 1, "logIn": 1, "signUp": 1}, (
        with_limits,
        without,
    )


# --- the argon2 cap ----------------------------------------------------------------------------


class HeldHasher(PasswordHasher):
    """Cheap argon2 whose verify, once armed, holds its thread until released."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        if self.armed:
            self.entered.set()
            self.release.wait(10)
        return super().verify(hash, password)


@pytest.mark.usefixtures("single_redis")  # counts one client's round trips to one server
async def test_log_ins_past_the_argon2_line_are_refused_at_once(
    settings_: Settings, stack: AsyncExitStack
) -> None:
    hasher = HeldHasher()
    services = await counted_services(settings_, stack, Passwords(hasher, concurrency=1, queue=1))
    api = await api_from(stack, services, ATTACKER)
    hasher.armed = True
    # Unknown handles: each pays a decoy verify, which takes a slot like any other.
    running = asyncio.create_task(api.gql(LOG_IN, {"h": "ghost1", "p": "guess1234"}))
    assert await asyncio.to_thread(hasher.entered.wait, 5)
    waiting = asyncio.create_task(api.gql(LOG_IN, {"h": "ghost2", "p": "guess1234"}))
    await asyncio.sleep(0.05)
    refused = await api.gql(LOG_IN, {"h": "ghost3", "p": "guess1234"})
    assert assert_limited(refused) == 1
    assert not waiting.done()
    hasher.release.set()
    assert (await running).codes == ["UNAUTHENTICATED"]
    assert (await waiting).codes == ["UNAUTHENTICATED"]


# --- websockets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_subscription_over_the_limit_is_refused_with_retry_after(
    make_services: ServicesFactory, protocol: str
) -> None:
    services = await make_services(query_rate_limit=2)
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    async with running_server(services) as url, Api.running(services) as api:
        alice: Account = await api.sign_up("alice")
        ws_url = url.replace("http", "ws") + "/graphql"
        async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol(protocol)]) as ws:
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {alice.token}"}}
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            frames: list[dict[str, Any]] = []
            for op in ("1", "2", "3"):
                query = "subscription { homeFeedUpdates { kind } }"
                await ws.send(json.dumps({"id": op, "type": start, "payload": {"query": query}}))
            async with asyncio.timeout(5):
                while not frames:
                    frame = json.loads(await ws.recv())
                    if frame.get("type") not in ("ping", "ka"):
                        frames.append(frame)
    # The three run concurrently: whichever was counted third is the one refused.
    (frame,) = frames
    payload = frame["payload"]
    error = payload[0] if isinstance(payload, list) else payload.get("errors", [payload])[0]
    assert frame["type"] in ("error", "data"), frame
    assert error["extensions"]["code"] == "RATE_LIMITED", frame
    assert isinstance(error["extensions"]["retryAfter"], int)


# --- persisted queries (the fast path beside the view) -------------------------------------------


@pytest.mark.parametrize("fast_path", [True, False])
async def test_persisted_queries_count_once_and_are_refused_alike(
    make_services: ServicesFactory, stack: AsyncExitStack, fast_path: bool
) -> None:
    services = await make_services(anonymous_rate_limit=3)
    api = await stack.enter_async_context(Api.running(services, fast_path=fast_path, client=ATTACKER))
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(WHO.encode()).hexdigest()}}
    registered = await api.http.post("/graphql", json={"query": WHO, "extensions": persisted})
    assert registered.status_code == 200 and registered.json()["data"] == {"user": None}
    statuses = [
        (await api.http.post("/graphql", json={"extensions": persisted})).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    refused = await api.http.get("/graphql", params={"extensions": json.dumps(persisted)})
    assert refused.status_code == 429
    body = refused.json()
    assert body["data"] is None and [e["extensions"]["code"] for e in body["errors"]] == ["RATE_LIMITED"]
    assert refused.headers["Retry-After"] == str(body["errors"][0]["extensions"]["retryAfter"])

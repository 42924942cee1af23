"""homefeed.app: which address a request is counted under, as the HTTP layer sees it.

The rules themselves are tested in tests/feed/test_addresses.py; here, that the app applies
them to real requests: the socket peer by default, X-Forwarded-For only from a trusted proxy,
and a 429 with Retry-After only for an answer refused as a whole. Served by uvicorn with the
options every server uses, the peer the app sees is the socket's, whatever uvicorn would
make of the header itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from homefeed.app import refused_for
from homefeed.feed.addresses import parse_networks
from tests.api import Api
from tests.conftest import ServicesFactory
from tests.server import running_server

WHO = 'query { user(handle: "nobody") { id } }'
PROXY = ("10.1.2.3", 443)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


async def statuses(api: Api, forwarded: list[str | None]) -> list[int]:
    out = []
    for value in forwarded:
        headers = {"X-Forwarded-For": value} if value is not None else {}
        out.append((await api.http.post("/graphql", json={"query": WHO}, headers=headers)).status_code)
    return out


async def test_x_forwarded_for_is_ignored_by_default(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    # A client rotating made-up X-Forwarded-For values is still one address.
    services = await make_services(anonymous_rate_limit=2)
    api = await stack.enter_async_context(Api.running(services, client=("203.0.113.9", 1)))
    spoofed = ["1.1.1.1", "2.2.2.2", "3.3.3.3", None]
    assert await statuses(api, spoofed) == [200, 200, 429, 429]


async def test_an_untrusted_peer_cannot_pick_its_address(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    services = await make_services(anonymous_rate_limit=2, trusted_proxies=parse_networks("10.0.0.0/8"))
    api = await stack.enter_async_context(Api.running(services, client=("203.0.113.9", 1)))
    assert await statuses(api, ["1.1.1.1", "10.0.0.1", "2.2.2.2"]) == [200, 200, 429]


async def test_behind_a_trusted_proxy_each_client_is_counted_apart(
    make_services: ServicesFactory, stack: AsyncExitStack
) -> None:
    services = await make_services(anonymous_rate_limit=2, trusted_proxies=parse_networks("10.0.0.0/8"))
    proxy = await stack.enter_async_context(Api.running(services, client=PROXY))
    assert await statuses(proxy, ["198.51.100.7", "198.51.100.7", "198.51.100.7"]) == [200, 200, 429]
    assert await statuses(proxy, ["198.51.100.8"]) == [200]
    # Whatever a client prepends, the proxy's own entry (rightmost) is the one counted.
    assert await statuses(proxy, ["6.6.6.6, 198.51.100.7", "7.7.7.7, 198.51.100.8"]) == [429, 200]
    # Requests the proxy forwards without the header are the proxy's own.
    assert await statuses(proxy, [None, None, None]) == [200, 200, 429]


# The header a client on the server's own host (or behind a local proxy) would send.
SPOOFED = ["1.1.1.1", "2.2.2.2", "3.3.3.3"]
WHO_HASH = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(WHO.encode()).hexdigest()}}


async def served_statuses(url: str, forwarded: list[str], *, persisted: bool) -> list[int]:
    """Statuses of anonymous queries to the served app from 127.0.0.1, one per X-Forwarded-For
    value, after one request without the header (the persisted document's registration)."""
    async with httpx.AsyncClient(base_url=url) as http:
        first = {"query": WHO} | ({"extensions": WHO_HASH} if persisted else {})
        out = [(await http.post("/graphql", json=first)).status_code]
        # Hash only: the fast path answers it (tests/schema/persisted/test_fast.py).
        body = {"extensions": WHO_HASH} if persisted else {"query": WHO}
        for value in forwarded:
            response = await http.post("/graphql", json=body, headers={"X-Forwarded-For": value})
            out.append(response.status_code)
    return out


@pytest.mark.parametrize("persisted", [False, True], ids=["view", "fast"])
async def test_served_a_local_peer_is_not_taken_for_the_address_it_forwards(
    make_services: ServicesFactory, persisted: bool
) -> None:
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told not to: the app's rule,
    # which trusts no proxy by default, must be the only one.
    services = await make_services(anonymous_rate_limit=3)
    async with running_server(services) as url:
        assert await served_statuses(url, SPOOFED, persisted=persisted) == [200, 200, 200, 429]


@pytest.mark.parametrize("persisted", [False, True], ids=["view", "fast"])
async def test_served_behind_a_trusted_local_proxy_the_forwarded_address_counts(
    make_services: ServicesFactory, persisted: bool
) -> None:
    services = await make_services(anonymous_rate_limit=2, trusted_proxies=parse_networks("127.0.0.1"))
    async with running_server(services) as url:
        # The proxy's own request, then three clients: only the third request of 198.51.100.7 waits.
        forwarded = ["198.51.100.7", "198.51.100.8", "198.51.100.7", "198.51.100.7"]
        assert await served_statuses(url, forwarded, persisted=persisted) == [200, 200, 200, 200, 429]


def test_only_an_answer_refused_as_a_whole_is_a_429() -> None:
    limited = {"message": "slow down", "extensions": {"code": "RATE_LIMITED", "retryAfter": 7}}
    other = {"message": "bad", "extensions": {"code": "BAD_USER_INPUT"}}
    later = {"message": "slow down", "extensions": {"code": "RATE_LIMITED", "retryAfter": 30}}
    assert refused_for({"data": None, "errors": [limited]}) == 7
    assert refused_for({"data": None, "errors": [limited, later]}) == 30
    assert refused_for({"data": None, "errors": [limited, other]}) is None
    assert refused_for({"data": {"a": None}, "errors": [limited]}) is None
    assert refused_for({"data": None, "errors": []}) is None
    assert refused_for([{"data": None, "errors": [limited]}]) is None  # batches keep their 200

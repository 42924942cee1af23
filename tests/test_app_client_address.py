"""homefeed.app: which address a request is counted under, as the HTTP layer sees it.

The rules themselves are tested in tests/feed/test_addresses.py; here, that the app applies
them to real requests: the socket peer by default, X-Forwarded-For only from a trusted proxy,
and a 429 with Retry-After only for an answer refused as a whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from homefeed.app import refused_for
from homefeed.feed.addresses import parse_networks
from tests.api import Api
from tests.conftest import ServicesFactory

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

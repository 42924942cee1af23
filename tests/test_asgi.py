"""homefeed.asgi: the fast path's front. Its answers are compared with the view's in
tests/schema/persisted/test_fast.py; here, the Content-Length rule, and which paths it takes."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.app import create_app
from homefeed.asgi import BadContentLength, declared_length
from homefeed.feed.services import Services
from homefeed.schema.persisted.fast import FastPath

WHO = 'query { user(handle: "nobody") { id } }'
WHO_HASH = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(WHO.encode()).hexdigest()}}


def lengths(*values: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"x"), *((b"content-length", v) for v in values), (b"accept", b"*/*")]


@given(st.lists(st.integers(min_value=0, max_value=10**12).map(lambda n: str(n).encode()), max_size=4))
def test_a_declared_length_is_read_only_when_every_value_agrees(values: list[bytes]) -> None:
    if len(set(values)) > 1:
        with pytest.raises(BadContentLength):
            declared_length(lengths(*values))
    else:
        assert declared_length(lengths(*values)) == (int(values[0]) if values else None)
    # The same values as one comma-separated list: the same rule.
    if values and len(set(values)) > 1:
        with pytest.raises(BadContentLength):
            declared_length(lengths(b", ".join(values)))
    elif values:
        assert declared_length(lengths(b", ".join(values))) == int(values[0])


# The Arabic-Indic digit five (UTF-8) is a digit to str.isdigit, not to the header's grammar.
NOT_LENGTHS = [b"", b"-5", b"+5", b"5.0", b"0x10", b"five", b"\xd9\xa5", b"5,", b"1" * 5000]


@pytest.mark.parametrize("value", NOT_LENGTHS)
def test_anything_but_digits_is_not_a_length(value: bytes) -> None:
    with pytest.raises(BadContentLength):
        declared_length(lengths(value))


@pytest.mark.parametrize(
    ("root_path", "url", "fast"),
    [
        ("", "/graphql", True),
        ("/api", "/api/graphql", True),  # the server includes its root path in the path
        ("/api", "/graphql", True),  # it does not (older servers): Starlette's router matches too
        ("/api", "/api/graphqlx", False),
        ("/graphql", "/graphql", False),  # the root itself, which the router does not route either
    ],
)
async def test_the_fast_path_takes_what_the_router_would_route_to_graphql(
    services: Services, monkeypatch: pytest.MonkeyPatch, root_path: str, url: str, fast: bool
) -> None:
    taken: list[bytes | None] = []
    original = FastPath.run

    async def spy(self: FastPath, *args: Any) -> bytes | None:
        taken.append(await original(self, *args))
        return taken[-1]

    monkeypatch.setattr(FastPath, "run", spy)
    app = create_app(services=services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            registered = await http.post(url, json={"query": WHO, "extensions": WHO_HASH})
            response = await http.post(url, json={"extensions": WHO_HASH})
    assert (taken != [] and taken[-1] is not None) == fast
    if fast:
        assert registered.status_code == response.status_code == 200
        assert response.json()["data"] == {"user": None}

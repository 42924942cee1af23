"""Apollo's automatic persisted queries over plain HTTP, step by step as Apollo Client sends them."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import orjson

from homefeed.feed.services import Services
from tests.api import Account, Api
from tests.conftest import ServicesFactory

PROFILE = (
    "query Profile($h: String!) { user(handle: $h) { __typename handle posts(first: 2) { nodes { text } } } }"
)
CREATE = "mutation Create($t: String!) { createPost(text: $t) { id } }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def post(api: Api, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await api.http.post("/graphql", json=body, headers=headers)


async def get(api: Api, token: str | None = None, **params: Any) -> httpx.Response:
    # Apollo Client's GET form: variables and extensions as JSON text in the query string.
    query = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in params.items()}
    headers = {"Accept": "*/*", **({"Authorization": f"Bearer {token}"} if token else {})}
    return await api.http.get("/graphql", params=query, headers=headers)


def data(response: httpx.Response) -> Any:
    """The data of a 200 answer without errors (its extensions carry the query's cost)."""
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


NOT_FOUND = {
    "errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]
}


async def test_hash_miss_then_registration_then_hash_only_over_post(api: Api) -> None:
    alice = await api.sign_up("alice")
    await api.post(alice, "hello")
    request = {"operationName": "Profile", "variables": {"h": "alice"}, "extensions": persisted(sha(PROFILE))}
    miss = await post(api, request)
    # 200, not 4xx: Apollo Client's link turns persisted queries off for good after a 400 or 500.
    assert (miss.status_code, miss.json()) == (200, NOT_FOUND)
    registered = await post(api, {**request, "query": PROFILE})
    expected = {"user": {"__typename": "User", "handle": "alice", "posts": {"nodes": [{"text": "hello"}]}}}
    assert data(registered) == expected
    hit = await post(api, request)
    assert data(hit) == expected
    # Variables still vary per request: the hash names the document, not the answer.
    other = await post(api, {**request, "variables": {"h": "nobody"}})
    assert data(other) == {"user": None}


async def test_get_form_misses_registers_and_hits(api: Api) -> None:
    await api.sign_up("bob")
    params: dict[str, Any] = {
        "operationName": "Profile",
        "variables": {"h": "bob"},
        "extensions": persisted(sha(PROFILE)),
    }
    miss = await get(api, **params)
    # Not GraphiQL: a GET naming a persisted document wants its answer.
    assert (miss.status_code, miss.json()) == (200, NOT_FOUND)
    registered = await get(api, query=PROFILE, **params)
    assert registered.json()["data"]["user"]["handle"] == "bob"
    hit = await get(api, **params)
    assert data(hit) == data(registered)


async def test_get_refuses_mutations_by_text_and_by_hash(api: Api) -> None:
    alice = await api.sign_up("alice")
    variables = {"t": "over GET"}
    by_text = await get(
        api, token=alice.token, query=CREATE, variables=variables, extensions=persisted(sha(CREATE))
    )
    assert by_text.status_code == 400
    assert by_text.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # Registered over POST (where it runs), the hash still cannot run it over GET.
    ran = await post(
        api, {"query": CREATE, "variables": variables, "extensions": persisted(sha(CREATE))}, alice.token
    )
    assert ran.json()["data"]["createPost"]["id"]
    by_hash = await get(api, token=alice.token, variables=variables, extensions=persisted(sha(CREATE)))
    assert by_hash.status_code == 400
    assert by_hash.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    posts = await api.gql('query { user(handle: "alice") { posts { nodes { text } } } }')
    assert posts.ok()["user"]["posts"]["nodes"] == [{"text": "over GET"}]


async def test_a_wrong_hash_is_refused_and_registers_nothing(api: Api) -> None:
    await api.sign_up("alice")
    forged = sha("query { viewer { id } }")
    refused = await post(
        api, {"query": PROFILE, "variables": {"h": "alice"}, "extensions": persisted(forged)}
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "errors": [{"message": "provided sha does not match query", "extensions": {"code": "BAD_USER_INPUT"}}]
    }
    still_missing = await post(api, {"extensions": persisted(forged)})
    assert still_missing.json() == NOT_FOUND


async def test_malformed_persisted_query_extensions_are_refused(api: Api) -> None:
    for extension in (
        {"version": 2, "sha256Hash": sha(PROFILE)},
        {"version": 1},
        "abc",
        {"version": 1, "sha256Hash": 5},
    ):
        response = await post(api, {"extensions": {"persistedQuery": extension}})
        assert response.status_code == 400, extension
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_invalid_document_is_answered_but_not_registered(api: Api) -> None:
    broken = "query { user(handle: 1) { nope } }"
    first = await post(api, {"query": broken, "extensions": persisted(sha(broken))})
    assert first.status_code == 200
    assert {e["extensions"]["code"] for e in first.json()["errors"]} == {"BAD_USER_INPUT"}
    assert (await post(api, {"extensions": persisted(sha(broken))})).json() == NOT_FOUND


async def test_the_store_is_bounded_registration_cannot_flood_it(make_services: ServicesFactory) -> None:
    # Room for about three documents of this size: registering fifty keeps memory at the bound.
    documents = [f"query Q{i} {{ viewer {{ id handle }} }}" for i in range(50)]
    budget = 3 * (64 + len(documents[0]) + 1)
    services = await make_services(apq_store_bytes=budget)
    async with Api.running(services) as api:
        for text in documents:
            registered = await post(api, {"query": text, "extensions": persisted(sha(text))})
            assert data(registered) == {"viewer": None}
        answers = [(await post(api, {"extensions": persisted(sha(text))})).json() for text in documents]
    assert answers[0] == NOT_FOUND  # the oldest went first
    assert answers[-1]["data"] == {"viewer": None}  # the newest is there
    assert 1 <= sum(a != NOT_FOUND for a in answers) <= 3


async def test_with_no_store_the_server_says_not_supported(make_services: ServicesFactory) -> None:
    services = await make_services(apq_store_bytes=0)
    async with Api.running(services) as api:
        for body in (
            {"extensions": persisted(sha(PROFILE))},
            {"query": PROFILE, "variables": {"h": "x"}, "extensions": persisted(sha(PROFILE))},
        ):
            response = await post(api, body)
            assert (response.status_code, response.json()) == (
                200,
                {
                    "errors": [
                        {
                            "message": "PersistedQueryNotSupported",
                            "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
                        }
                    ]
                },
            )
        # Plain documents still run.
        plain = await post(api, {"query": "{ viewer { id } }"})
        assert data(plain) == {"viewer": None}


async def test_persisted_requests_keep_authentication(api: Api, services: Services) -> None:
    alice: Account = await api.sign_up("alice")
    viewer = "query Me { viewer { handle } }"
    body = {"query": viewer, "extensions": persisted(sha(viewer))}
    assert data(await post(api, body, alice.token)) == {"viewer": {"handle": "alice"}}
    hashed = {"extensions": persisted(sha(viewer))}
    assert data(await post(api, hashed, alice.token)) == {"viewer": {"handle": "alice"}}
    assert data(await post(api, hashed)) == {"viewer": None}
    bad = await post(api, hashed, "not-a-token")
    assert [e["extensions"]["code"] for e in bad.json()["errors"]] == ["UNAUTHENTICATED"]

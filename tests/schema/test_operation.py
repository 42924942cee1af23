"""A document of several operations runs only the one the request names (the spec's GetOperation)."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.api import Api

TWO = "query A { viewer { id } } query B { viewer { handle } }"


def _apq(text: str) -> dict[str, Any]:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def test_two_operations_without_a_name_are_refused_and_run_nothing(api: Api) -> None:
    me = await api.sign_up("chooser")
    headers = {"Authorization": f"Bearer {me.token}"}
    responses = [
        await api.http.post("/graphql", json={"query": TWO}, headers=headers),
        await api.http.get("/graphql", params={"query": TWO}, headers=headers),
        # Registered as a persisted query: the fast path must refuse it the same way.
        await api.http.post("/graphql", json={"query": TWO, "extensions": _apq(TWO)}, headers=headers),
        await api.http.post("/graphql", json={"extensions": _apq(TWO)}, headers=headers),
    ]
    for response in responses:
        body = response.json()
        assert body.get("data") is None, body
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body
        assert "operationName" in body["errors"][0]["message"]


async def test_the_named_operation_runs_and_one_operation_needs_no_name(api: Api) -> None:
    me = await api.sign_up("chooser")
    headers = {"Authorization": f"Bearer {me.token}"}
    named = await api.http.post("/graphql", json={"query": TWO, "operationName": "B"}, headers=headers)
    assert named.json()["data"] == {"viewer": {"handle": "chooser"}}
    single = await api.http.post("/graphql", json={"query": "query A { viewer { handle } }"}, headers=headers)
    assert single.json()["data"] == {"viewer": {"handle": "chooser"}}

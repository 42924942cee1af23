"""The served API under schemathesis, a GraphQL fuzzer nobody here wrote.

Every query and mutation of the published schema is generated from introspection, valid
(positive) and invalid (negative), and sent over HTTP to a served app on real PostgreSQL and Redis
holding a small world: anonymously, with a valid bearer token, with a bad one, and with a
well-signed one of a user who does not exist. Queries are also sent as persisted queries. No
answer may be a 5xx, carry an INTERNAL error, lack an error code or break GraphQL's response
shape (schemathesis' own conformance check: a JSON object, no null in a non-null field);
afterwards the service is still healthy. HOMEFEED_FUZZ_EXAMPLES sets the examples per
operation, mode and viewer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckContext
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS

from homefeed.feed.config import Settings
from homefeed.feed.services import Services
from tests.api import Account, Api
from tests.conftest import FAST_PASSWORDS, with_search_path
from tests.served import served_on_a_thread
from tests.small_world import World, seed

EXAMPLES = int(os.environ.get("HOMEFEED_FUZZ_EXAMPLES", "12"))
CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "RATE_LIMITED",
    "PERSISTED_QUERY_NOT_FOUND",
}
BAD_TOKEN = "Bearer not.a.token"


@dataclass
class Tally:
    """What the run sent and got back, for the report."""

    examples: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    answered_data: int = 0
    persisted: int = 0  # APQ requests, beside the examples

    def report(self) -> str:
        return (
            f"{sum(self.examples.values())} examples over {len(self.examples)} operations; "
            f"statuses {dict(sorted(self.statuses.items()))}; "
            f"error codes {dict(sorted(self.codes.items()))}; "
            f"{self.answered_data} answers with data; {self.persisted} persisted-query requests"
        )


def coded_errors(ctx: CheckContext, response: Response, case: schemathesis.Case[Any]) -> bool | None:
    """Our contract on top of schemathesis' checks: no 5xx, every error coded, none INTERNAL."""
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    payload = response.json()
    assert isinstance(payload, dict) and ("data" in payload or "errors" in payload), payload
    errors = payload.get("errors") or []
    assert isinstance(errors, list), payload
    for error in errors:
        assert isinstance(error, dict) and isinstance(error.get("message"), str), error
        code = (error.get("extensions") or {}).get("code")
        assert code != "INTERNAL", f"INTERNAL for {case.body!r}"
        assert code in CODES, f"error without a known code: {error}"
    # A request refused before execution answers without data; one that ran answers with it.
    assert response.status_code == 200 or "data" not in payload or payload["data"] is None, payload
    return None


def fuzz(
    operation: Any,
    mode: GenerationMode,
    url: str,
    headers: dict[str, str],
    tally: Tally,
    examples: int = EXAMPLES,
) -> None:
    """Run generated cases of one operation in one mode as one viewer; raises the first failure
    hypothesis finds (shrunk)."""

    @settings(max_examples=examples, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=url, headers=headers)
        tally.examples[operation.label] += 1
        checked(case, response, headers, tally)
        if operation.label.startswith("Query."):
            persisted(case, url, headers, response, tally)

    run()


def checked(case: schemathesis.Case[Any], response: Any, headers: dict[str, str], tally: Tally) -> None:
    """Count the answer, then run schemathesis' conformance check and ours on it."""
    tally.statuses[response.status_code] += 1
    payload: Any = response.json() if response.status_code < 500 else {}
    for error in payload.get("errors") or []:
        tally.codes[str((error.get("extensions") or {}).get("code"))] += 1
    tally.answered_data += bool(payload.get("data"))
    case.validate_response(
        response,
        checks=[schemathesis.checks.response_schema_conformance, coded_errors],
        headers=headers,
    )


def persisted(
    case: schemathesis.Case[Any], url: str, headers: dict[str, str], plain: Any, tally: Tally
) -> None:
    """The same query as an automatic persisted query (APQ): the hash alone, the hash with the
    text (which registers a valid document), then the hash alone over POST and GET. Each answer
    passes the same checks; once registered, each is the plain answer (a query changes nothing;
    but a RANKED first page ranks anew and names a new snapshot each time)."""
    query = str(case.body)
    digest = hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()
    extensions: dict[str, Any] = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    endpoint = f"{url}/graphql"
    legs = [
        requests.post(endpoint, json={"extensions": extensions}, headers=headers),
        requests.post(endpoint, json={"query": query, "extensions": extensions}, headers=headers),
        requests.post(endpoint, json={"extensions": extensions}, headers=headers),
        requests.get(endpoint, params={"extensions": json.dumps(extensions)}, headers=headers),
    ]
    tally.persisted += len(legs)
    for leg in legs:
        checked(case, leg, headers, tally)
    if "RANKED" in query:
        return
    expected = plain.json()
    assert legs[1].json() == expected, (query, legs[1].text, plain.text)
    for leg in legs[2:]:
        codes = [(e.get("extensions") or {}).get("code") for e in leg.json().get("errors") or []]
        if codes != ["PERSISTED_QUERY_NOT_FOUND"]:  # else: the document did not validate
            assert leg.json() == expected, (query, leg.request.method, leg.text, plain.text)


def described(exc: BaseException) -> str:
    """A failure as a line of the report: schemathesis' failures with their messages."""
    if isinstance(exc, FailureGroup):
        return "; ".join(f"{f.title}: {f.message}" for f in exc.exceptions)
    return repr(exc)


@contextmanager
def scalars_from(world: World) -> Iterator[None]:
    """Arguments drawn now and then from the world (ids, handles, the password, cursors), so
    generated operations reach past 'not found' into real rows; else schemathesis' own values."""
    strings = [*world.handles, *(f"@{h.upper()}" for h in world.handles), "password123", *world.cursors]
    chosen = {
        "ID": st.one_of(st.sampled_from(world.ids), st.text(max_size=12)).map(nodes.String),
        "String": st.one_of(st.sampled_from(strings), st.text(max_size=40)).map(nodes.String),
        "Int": st.one_of(st.integers(-2, 102), st.integers(-(2**31), 2**31 - 1)).map(nodes.Int),
    }
    saved = {name: CUSTOM_SCALARS.get(name) for name in chosen}
    for name, strategy in chosen.items():
        schemathesis.graphql.scalar(name, strategy)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                CUSTOM_SCALARS.pop(name, None)
            else:
                CUSTOM_SCALARS[name] = previous


@dataclass(frozen=True)
class Fuzzed:
    settings: Settings  # this test's, with rate limits off: fuzzing is a flood by design
    world: World
    ghost: str  # a well-signed token of a user who does not exist


@pytest.fixture
async def fuzzed(settings_: Settings, services: Services, api: Api) -> Fuzzed:
    return Fuzzed(settings_.with_(rate_limit_per_minute=0), await seed(api), services.tokens.issue(1))


def test_fuzz_the_served_api(fuzzed: Fuzzed) -> None:
    """schemathesis finds no 5xx, no INTERNAL, no uncoded error and no malformed answer."""
    world = fuzzed.world
    tally = Tally()
    failures: list[str] = []
    viewers: dict[str, dict[str, str]] = {
        "anonymous": {},
        "token": {"Authorization": f"Bearer {world.accounts[0].token}"},
        "bad token": {"Authorization": BAD_TOKEN},
        "ghost's token": {"Authorization": f"Bearer {fuzzed.ghost}"},
    }
    with served_on_a_thread(fuzzed.settings, FAST_PASSWORDS) as url, scalars_from(world):
        schema = schemathesis.graphql.from_url(f"{url}/graphql")
        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operations.append(result.ok())
        assert {op.label for op in operations} >= {"Query.homeFeed", "Mutation.signUp", "Mutation.likePost"}
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for viewer, headers in viewers.items():
                    try:
                        fuzz(operation, mode, url, headers, tally)
                    except (Exception, FailureGroup) as exc:
                        failures.append(f"{operation.label} ({mode.value}, {viewer}): {described(exc)}")
        health = httpx.get(f"{url}/healthz")
        alive = httpx.post(f"{url}/graphql", json={"query": '{ user(handle: "alice") { handle } }'})
    print(f"\nfuzz: {tally.report()}")
    assert not failures, "\n\n".join(failures)
    assert health.status_code == 200, health.text
    assert alive.json()["data"] == {"user": {"handle": "alice"}}
    # Not vacuous: real rows were reached, and both kinds of answers came back.
    assert tally.answered_data > 0
    assert tally.codes["BAD_USER_INPUT"] > 0 and tally.codes["UNAUTHENTICATED"] > 0


def test_the_fuzzer_finds_an_internal_error(settings_: Settings) -> None:
    """Not vacuous: over a database without our tables, schemathesis reaches an INTERNAL answer."""
    assert settings_.database_url
    broken = settings_.with_(
        database_url=with_search_path(settings_.database_url, "no_such_schema"), inprocess_worker=False
    )
    world = World(
        accounts=[Account("no token", "VXNlcjox", "alice")], posts=[], deleted="UG9zdDox", cursors=[]
    )
    with served_on_a_thread(broken, FAST_PASSWORDS) as url, scalars_from(world):
        operation = schemathesis.graphql.from_url(f"{url}/graphql")["Query"]["user"]
        with pytest.raises(FailureGroup) as failure:
            fuzz(operation, GenerationMode.POSITIVE, url, {}, Tally(), examples=50)
    assert "INTERNAL for" in described(failure.value)

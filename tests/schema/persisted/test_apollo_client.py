"""Apollo Client itself (`createPersistedQueryLink` over `HttpLink`, run by node) against a served
homefeed: the first query sends the hash alone, is told PERSISTED_QUERY_NOT_FOUND and registers the
document; the next sends the hash alone and is answered; over POST, and over GET for hashed
queries. The answers equal the plain query's.

node and npm are needed; without them the test is skipped. The client's packages, pinned, are
installed once into pytest's cache directory (about 15 MB, outside the package) and reused
(without that cache, into a temporary directory, each session).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from graphql import parse, print_ast

from tests.api import Api

PACKAGES = {"@apollo/client": "3.13.8", "graphql": "16.11.0"}
SCRIPT = Path(__file__).with_name("apollo_client.mjs")
FEED = """query HomeFeed($first: Int) {
  homeFeed(first: $first) { edges { cursor node { id text likeCount viewerHasLiked
    author { id handle viewerFollows } } } pageInfo { hasNextPage endCursor } } }"""
NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"


@pytest.fixture(scope="session")
def apollo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the client script beside its installed packages."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run Apollo Client")
    cache = getattr(request.config, "cache", None)
    # Without pytest's cache (-p no:cacheprovider), a directory of this session's: installed anew.
    root = Path(cache.mkdir("apollo-client")) if cache is not None else tmp_path_factory.mktemp("apollo")
    wanted = {"private": True, "type": "module", "dependencies": PACKAGES}
    with open(root / ".lock", "w") as lock:
        # Test processes sharing the cache install one at a time.
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = root / "package.json"
        installed = root / "node_modules" / "@apollo" / "client" / "package.json"
        if not installed.exists() or not manifest.exists() or json.loads(manifest.read_text()) != wanted:
            manifest.write_text(json.dumps(wanted))
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
        shutil.copyfile(SCRIPT, root / SCRIPT.name)
    return root


async def _apollo_client(apollo: Path, url: str, token: str, mode: str, variables: dict[str, Any]) -> Any:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(apollo / SCRIPT.name),
        url,
        token,
        mode,
        FEED,
        json.dumps(variables),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


def _sent(exchange: dict[str, Any]) -> dict[str, Any]:
    """What one request carried: the POST body, or GET's parameters (JSON ones decoded)."""
    if exchange["method"] == "POST":
        body: dict[str, Any] = json.loads(exchange["body"])
        return body
    params = {k: v[0] for k, v in parse_qs(urlsplit(exchange["url"]).query).items()}
    return {k: json.loads(v) if k in ("variables", "extensions") else v for k, v in params.items()}


@pytest.mark.parametrize("mode", ["post", "get"])
async def test_apollo_clients_persisted_query_link(apollo: Path, server: str, http: Api, mode: str) -> None:
    alice = await http.sign_up("alice")
    for text in ("one", "two", "three"):
        # Her own posts are on her next read (invariant 18): no fan-out to wait for.
        await http.post(alice, text)
    variables = {"first": 2}
    expected = (await http.gql(FEED, variables, token=alice.token)).ok()
    assert len(expected["homeFeed"]["edges"]) == 2

    ran = await _apollo_client(apollo, f"{server}/graphql", alice.token, mode, variables)

    miss, registration, hit = ran["exchanges"]
    # Apollo hashes the document as it prints it: the same operation, in its own layout.
    document = _sent(registration)["query"]
    assert print_ast(parse(document)) == print_ast(parse(FEED))
    hashed = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(document.encode()).hexdigest()}}
    # The hash alone (GET's form when asked for): not known yet.
    assert miss["method"] == ("GET" if mode == "get" else "POST")
    assert "query" not in _sent(miss) and _sent(miss)["extensions"] == hashed
    assert miss["status"] == 200
    assert json.loads(miss["response"])["errors"][0]["extensions"]["code"] == NOT_FOUND
    # The document with its hash, which registers it (Apollo sends this one by POST).
    assert registration["method"] == "POST"
    assert _sent(registration)["extensions"] == hashed
    assert json.loads(registration["response"])["data"] == expected
    # The hash alone again: known now, and answered.
    assert hit["method"] == miss["method"]
    assert "query" not in _sent(hit) and _sent(hit)["extensions"] == hashed
    assert json.loads(hit["response"])["data"] == expected
    assert "errors" not in json.loads(hit["response"])
    assert ran["results"] == [expected, expected]

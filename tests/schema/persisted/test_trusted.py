"""Trusted documents: with a manifest, only its operations run, over HTTP and websockets."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from homefeed.app import persisted_operations
from homefeed.feed.config import Settings, SettingsError
from homefeed.schema import schema
from homefeed.schema.errors import CodedSchema
from homefeed.schema.persisted import ManifestError, load_manifest
from tests.api import Api
from tests.conftest import ServicesFactory
from tests.schema.persisted.test_apq import NOT_FOUND, data, persisted, post

PROFILE = "query Profile($h: String!) { user(handle: $h) { handle } }"
VIEWER = "query Me { viewer { id } }"
OTHER = "query Other { viewer { handle } }"
LIVE = "subscription Live { homeFeedUpdates { kind } }"
NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apollo_manifest(path: Path) -> Path:
    """What @apollo/generate-persisted-query-manifest writes."""
    operations = [
        {"id": sha(PROFILE), "name": "Profile", "type": "query", "body": PROFILE},
        {"id": sha(VIEWER), "name": "Me", "type": "query", "body": VIEWER},
        {"id": sha(LIVE), "name": "Live", "type": "subscription", "body": LIVE},
    ]
    path.write_bytes(
        orjson.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations})
    )
    return path


def relay_manifest(path: Path) -> Path:
    """What relay-compiler's persistConfig writes: id (md5 by default) to text."""
    path.write_bytes(orjson.dumps({hashlib.md5(t.encode()).hexdigest(): t for t in (PROFILE, VIEWER, LIVE)}))
    return path


async def test_operations_outside_the_manifest_are_refused(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    services = await make_services(trusted_documents=apollo_manifest(tmp_path / "manifest.json"))
    async with Api.running(services) as api:
        by_hash = await post(api, {"variables": {"h": "x"}, "extensions": persisted(sha(PROFILE))})
        assert data(by_hash) == {"user": None}
        by_text = await post(api, {"query": VIEWER})
        assert data(by_text) == {"viewer": None}
        # Registering a new document is how APQ grows its store; here it is refused and stays so.
        for body in (
            {"query": OTHER},
            {"query": OTHER, "extensions": persisted(sha(OTHER))},
            {"query": 'mutation { logIn(handle: "a", password: "b") { token } }'},
        ):
            refused = await post(api, body)
            assert refused.status_code == 403
            assert [e["extensions"]["code"] for e in refused.json()["errors"]] == [NOT_IN_LIST]
        assert (await post(api, {"extensions": persisted(sha(OTHER))})).json() == NOT_FOUND
        # A listed id sent with another document's text is a forgery, not a registration.
        forged = await post(api, {"query": OTHER, "extensions": persisted(sha(VIEWER))})
        assert forged.status_code == 400


async def test_relay_manifest_and_document_ids(make_services: ServicesFactory, tmp_path: Path) -> None:
    services = await make_services(trusted_documents=relay_manifest(tmp_path / "persisted_queries.json"))
    key = hashlib.md5(PROFILE.encode()).hexdigest()
    async with Api.running(services) as api:
        for field in ("doc_id", "documentId"):
            response = await post(api, {field: key, "variables": {"h": "x"}})
            assert data(response) == {"user": None}
        response = await api.http.get("/graphql", params={"doc_id": key, "variables": '{"h": "x"}'})
        assert data(response) == {"user": None}
        assert (await post(api, {"doc_id": "0" * 32})).json() == NOT_FOUND
        assert (await post(api, {"query": OTHER})).status_code == 403


async def test_websocket_documents_outside_the_manifest_are_refused(tmp_path: Path) -> None:
    trusted = load_manifest(apollo_manifest(tmp_path / "m.json")).bodies
    coded = CodedSchema(schema, over_http=False, trusted=trusted)
    for stream in (
        await coded.stream("subscription { homeFeedUpdates { postId } }"),
        await coded.subscribe(query="subscription { homeFeedUpdates { postId } }"),
    ):
        results: list[Any] = [r async for r in stream]
        assert [[e.extensions["code"] for e in r.errors] for r in results] == [[NOT_IN_LIST]]


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1, 2]", b'{"a": 1}', b'{"format": "apollo-persisted-query-manifest", "version": 2}'],
)
def test_a_bad_manifest_stops_start_up_naming_the_setting(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(ManifestError):
        load_manifest(path)
    with pytest.raises(SettingsError, match="HOMEFEED_TRUSTED_DOCUMENTS"):
        persisted_operations(Settings(trusted_documents=path))

"""Turning a request that names its document by id into one that carries the text.

Refusals follow Apollo's conventions, which its clients act on: an unknown hash is
`PERSISTED_QUERY_NOT_FOUND` (the client then resends the hash with the document, which
registers it), a server without APQ says `PERSISTED_QUERY_NOT_SUPPORTED` (the client stops
sending hashes), both with HTTP 200 because Apollo Client's default link gives up on
persisted queries for good after a 400 or a 500. In trusted-documents mode, a document that
is not in the manifest is `PERSISTED_QUERY_NOT_IN_LIST` (403), as Apollo's router answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from graphql import GraphQLError, GraphQLSchema, parse, validate

from homefeed.schema.errors import NOT_IN_LIST
from homefeed.schema.persisted.manifest import Manifest
from homefeed.schema.persisted.store import DocumentStore

APQ_VERSION = 1
SHA256_PREFIX = "sha256:"


class PersistedQueryRefused(Exception):
    """A persisted-operation request the server will not run, with its answer."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def not_found() -> PersistedQueryRefused:
    return PersistedQueryRefused("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND", 200)


def not_supported() -> PersistedQueryRefused:
    return PersistedQueryRefused("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED", 200)


def not_in_list() -> PersistedQueryRefused:
    return PersistedQueryRefused(NOT_IN_LIST, "PERSISTED_QUERY_NOT_IN_LIST", 403)


def bad_request(message: str) -> PersistedQueryRefused:
    return PersistedQueryRefused(message, "BAD_USER_INPUT", 400)


def sha256_hex(text: str) -> str:
    """The APQ id of a document: the lowercase hex sha256 of its UTF-8 text."""
    return hashlib.sha256(text.encode()).hexdigest()


def document_checker(schema: GraphQLSchema, max_tokens: int) -> Callable[[str], bool]:
    """Whether a document parses and validates: only such documents are registered."""

    def is_valid(text: str) -> bool:
        try:
            document = parse(text, max_tokens=max_tokens)
        except GraphQLError:
            return False
        return not validate(schema, document)

    return is_valid


class PersistedOperations:
    """APQ over a bounded per-process store, or (with a manifest) trusted documents only."""

    def __init__(
        self,
        *,
        store: DocumentStore | None,
        manifest: Manifest | None,
        is_valid: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.is_valid = is_valid

    def resolve(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        """The request with its document text under `query`; PersistedQueryRefused otherwise.

        Malformed fields this does not own (a non-string query, non-object extensions) are
        left for the GraphQL view to refuse in its usual words.
        """
        query = request.get("query")
        if query is not None and not isinstance(query, str):
            return request
        key, hashed = _document_id(request)
        if self.manifest is not None:
            text = self._trusted(self.manifest, key, hashed, query)
        else:
            text = self._automatic(key, hashed, query)
        if text is query:
            return request
        return {**request, "query": text}

    def _automatic(self, key: str | None, hashed: bool, query: str | None) -> str | None:
        if key is None:
            return query
        if self.store is None:
            raise not_supported()
        if query is None:
            text = self.store.get(key)
            if text is None:
                raise not_found()
            return text
        if not hashed:
            raise bad_request("send a document or its id, not both")
        if sha256_hex(query) != key:
            raise bad_request("provided sha does not match query")
        if self.store.get(key) is None and self.is_valid(query):
            self.store.put(key, query)
        return query

    def _trusted(self, manifest: Manifest, key: str | None, hashed: bool, query: str | None) -> str | None:
        if key is None:
            if query is not None and query not in manifest.bodies:
                raise not_in_list()
            return query
        text = manifest.documents.get(key)
        if text is None:
            if query is None:
                raise not_found()
            if query not in manifest.bodies:
                raise not_in_list()
            if hashed and sha256_hex(query) != key:
                raise bad_request("provided sha does not match query")
            return query
        if query is not None and query != text:
            raise bad_request("provided sha does not match query")
        return text


def _document_id(request: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The id a request names its document by, and whether it is an APQ sha256."""
    extensions = request.get("extensions")
    if isinstance(extensions, dict) and "persistedQuery" in extensions:
        persisted = extensions["persistedQuery"]
        if not isinstance(persisted, dict) or persisted.get("version") != APQ_VERSION:
            raise bad_request("Unsupported persisted query version")
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not digest:
            raise bad_request("persistedQuery.sha256Hash must be a non-empty string")
        return digest.lower(), True
    for field in ("documentId", "doc_id"):
        if field in request:
            value = request[field]
            if not isinstance(value, str) or not value:
                raise bad_request(f"{field} must be a non-empty string")
            if value.startswith(SHA256_PREFIX):
                return value.removeprefix(SHA256_PREFIX).lower(), False
            return value, False
    return None, False

"""Persisted operations: Apollo's automatic persisted queries and trusted-document manifests.

A request may name its document by id instead of sending it: `extensions.persistedQuery`
(Apollo's APQ, a sha256 of the text), or `documentId` / `doc_id` (the GraphQL-over-HTTP
persisted-documents draft and Relay's convention). `PersistedOperations.resolve` turns such a
request into the document text before anything parses it, or refuses it with Apollo's codes.
"""

from __future__ import annotations

from homefeed.schema.persisted.manifest import Manifest, ManifestError, load_manifest
from homefeed.schema.persisted.operations import PersistedOperations, PersistedQueryRefused
from homefeed.schema.persisted.store import DocumentStore

__all__ = [
    "DocumentStore",
    "Manifest",
    "ManifestError",
    "PersistedOperations",
    "PersistedQueryRefused",
    "load_manifest",
]

"""Trusted-document manifests, in the two formats client toolchains write.

- relay-compiler (`persistConfig: {"file": …}`): one JSON object, id → document text.
- Apollo's `generate-persisted-query-manifest`: `{"format": "apollo-persisted-query-manifest",
  "version": 1, "operations": [{"id", "name", "type", "body"}, …]}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

APOLLO_FORMAT = "apollo-persisted-query-manifest"


class ManifestError(ValueError):
    """The manifest cannot be read or is in neither format; the message says where."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """The operations a trusted-documents server runs: by id, and by their exact text."""

    documents: Mapping[str, str]
    bodies: frozenset[str]

    @classmethod
    def of(cls, documents: Mapping[str, str]) -> Manifest:
        """A manifest of these id → text pairs."""
        return cls(dict(documents), frozenset(documents.values()))


def load_manifest(path: Path) -> Manifest:
    """The manifest at `path`, in relay-compiler's or Apollo's format."""
    try:
        raw: Any = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not JSON: {exc}") from None
    if isinstance(raw, dict) and raw.get("format") == APOLLO_FORMAT:
        return _apollo(path, raw)
    if isinstance(raw, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        return Manifest.of(raw)
    raise ManifestError(
        f"{path} is neither relay-compiler's persisted JSON (an object of id to document text) "
        f'nor an Apollo persisted-query manifest ("format": "{APOLLO_FORMAT}")'
    )


def _apollo(path: Path, raw: dict[str, Any]) -> Manifest:
    if raw.get("version") != 1:
        raise ManifestError(f"{path}: Apollo manifest version {raw.get('version')!r}, only 1 is known")
    operations = raw.get("operations")
    if not isinstance(operations, list):
        raise ManifestError(f"{path}: an Apollo manifest needs an operations list")
    documents: dict[str, str] = {}
    for index, operation in enumerate(operations):
        if not (
            isinstance(operation, dict)
            and isinstance(operation.get("id"), str)
            and isinstance(operation.get("body"), str)
        ):
            raise ManifestError(f"{path}: operations[{index}] needs a string id and body")
        documents[operation["id"]] = operation["body"]
    return Manifest.of(documents)

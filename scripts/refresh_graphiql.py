"""Refresh the browser assets vendored under homefeed/static/vendor from the npm registry.

Not run at install or start-up: the package ships the files, so GraphiQL and the web client work
on a machine with no network. Run it by hand to move a pin (edit ASSETS), then commit the files
and the manifest it writes:

    uv run python scripts/refresh_graphiql.py

Each package tarball is checked against the registry's own sha512 before a file is taken out of
it; the manifest records every file's sha384 (the pages' integrity attributes are built from it).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
VENDOR = Path(__file__).resolve().parent.parent / "homefeed" / "static" / "vendor"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    member: str  # path inside the tarball, under package/
    name: str  # file name under homefeed/static/vendor


# GraphiQL 3.8 with React 18 and explorer 1.0 are released together to work as UMD globals;
# GraphiQL's bundle carries its own graphql-ws client for subscriptions. The web client loads
# graphql-ws's browser build on its own.
ASSETS = (
    Asset("react", "18.2.0", "umd/react.production.min.js", "react.production.min.js"),
    Asset("react-dom", "18.2.0", "umd/react-dom.production.min.js", "react-dom.production.min.js"),
    Asset("graphiql", "3.8.3", "graphiql.min.js", "graphiql.min.js"),
    Asset("graphiql", "3.8.3", "graphiql.min.css", "graphiql.min.css"),
    Asset("@graphiql/plugin-explorer", "1.0.2", "dist/index.umd.js", "plugin-explorer.umd.js"),
    Asset("@graphiql/plugin-explorer", "1.0.2", "dist/style.css", "plugin-explorer.css"),
    Asset("graphql-ws", "6.4.2", "umd/graphql-ws.min.js", "graphql-ws.min.js"),
)


def integrity(data: bytes, algorithm: str = "sha384") -> str:
    """A Subresource Integrity value ("sha384-<base64>")."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
        return body


def tarball(package: str, version: str) -> tarfile.TarFile:
    """The package's published tarball, verified against the registry's sha512."""
    meta = json.loads(_get(f"{REGISTRY}/{package.replace('/', '%2f')}/{version}"))
    data = _get(meta["dist"]["tarball"])
    expected = meta["dist"]["integrity"]
    if integrity(data, "sha512") != expected:
        raise SystemExit(f"{package}@{version}: tarball does not match the registry's {expected}")
    return tarfile.open(fileobj=io.BytesIO(data))


def main() -> None:
    """Download every asset, write it under VENDOR, and write VENDOR/manifest.json."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    opened: dict[tuple[str, str], tarfile.TarFile] = {}
    manifest = {}
    for asset in ASSETS:
        key = (asset.package, asset.version)
        if key not in opened:
            opened[key] = tarball(*key)
        member = opened[key].extractfile(f"package/{asset.member}")
        if member is None:
            raise SystemExit(f"{asset.package}@{asset.version} has no {asset.member}")
        data = member.read()
        # Stored compressed (the app sends it so): GraphiQL's bundle is 3.5 MB plain.
        (VENDOR / f"{asset.name}.gz").write_bytes(gzip.compress(data, 9, mtime=0))
        manifest[asset.name] = {
            "package": asset.package,
            "version": asset.version,
            "file": asset.member,
            "integrity": integrity(data),
        }
        print(f"{asset.name}: {asset.package}@{asset.version} {len(data)} bytes", file=sys.stderr)
    (VENDOR / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

"""The browser's side of the app: vendored assets and the pages that load them (GraphiQL, the client).

Every script and stylesheet a page loads is a file of this package (homefeed/static), so the
pages work with no network. Vendored files carry Subresource Integrity hashes from
static/vendor/manifest.json, which scripts/refresh_graphiql.py writes with the files (each stored
gzip-compressed as NAME.gz; the integrity hashes are of the uncompressed files, as browsers check).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
VENDOR = STATIC / "vendor"
STATIC_URL = "/static"

_ASSET = re.compile(r"<!--asset:([A-Za-z0-9._-]+)-->")


@dataclass(frozen=True)
class VendoredAsset:
    """One vendored file: where it came from and its integrity hash."""

    name: str
    package: str
    version: str
    integrity: str

    @property
    def url(self) -> str:
        return f"{STATIC_URL}/vendor/{self.name}"

    def tag(self) -> str:
        """The <script> or <link> element that loads it, integrity checked by the browser."""
        url, sri = html.escape(self.url), html.escape(self.integrity)
        if self.name.endswith(".css"):
            return f'<link rel="stylesheet" href="{url}" integrity="{sri}" />'
        return f'<script src="{url}" integrity="{sri}"></script>'


@cache
def vendored() -> dict[str, VendoredAsset]:
    """The manifest of vendored files, by file name."""
    raw = json.loads((VENDOR / "manifest.json").read_text())
    return {
        name: VendoredAsset(name, entry["package"], entry["version"], entry["integrity"])
        for name, entry in raw.items()
    }


@cache
def asset_gzip(name: str) -> bytes | None:
    """A vendored file as stored: gzip-compressed (GraphiQL's bundle alone is 3.5 MB plain,
    under 1 MB compressed, and browsers take it compressed); None for a name not vendored."""
    if name not in vendored():
        return None
    return (VENDOR / f"{name}.gz").read_bytes()


def asset_media_type(name: str) -> str:
    """The Content-Type a vendored file is served with."""
    return "text/css" if name.endswith(".css") else "text/javascript"


def render_page(template: str) -> str:
    """A page from homefeed/static with each <!--asset:NAME--> replaced by the asset's tag."""
    return fill_assets((STATIC / template).read_text(), template)


def fill_assets(text: str, source: str) -> str:
    """`text` with each <!--asset:NAME--> replaced by its tag; `source` names the text in errors."""
    assets = vendored()

    def tag(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in assets:
            raise LookupError(f"{source} names {name}, which is not in static/vendor/manifest.json")
        return assets[name].tag()

    return _ASSET.sub(tag, text)


@cache
def client_page() -> str:
    """The web client at `/` (static/client.html and static/client/)."""
    return render_page("client.html")


@cache
def graphiql_page() -> str:
    """GraphiQL with the explorer plugin, loading nothing from outside the app."""
    return render_page("graphiql.html")

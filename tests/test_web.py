"""Vendored browser assets: each file is the one its manifest names; pages load nothing from outside."""

from __future__ import annotations

import gzip
import re

import pytest

from homefeed.web import VENDOR, client_page, fill_assets, graphiql_page, vendored
from scripts.refresh_graphiql import ASSETS, integrity


def test_every_vendored_file_matches_its_manifest_integrity() -> None:
    manifest = vendored()
    on_disk = {p.name for p in VENDOR.iterdir() if p.name != "manifest.json"}
    assert on_disk == {f"{name}.gz" for name in manifest}
    assert {a.name for a in ASSETS} == set(manifest)
    for name, asset in manifest.items():
        assert integrity(gzip.decompress((VENDOR / f"{name}.gz").read_bytes())) == asset.integrity, name


def test_graphiql_page_loads_only_the_apps_own_files_with_integrity() -> None:
    page = graphiql_page()
    assert "<!--asset:" not in page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/static/vendor/") for s in sources)
    assert page.count('integrity="sha384-') == len(sources)


def test_a_page_naming_an_asset_outside_the_manifest_is_refused() -> None:
    with pytest.raises(LookupError, match=r"page\.html names not-vendored\.js"):
        fill_assets("<!--asset:not-vendored.js-->", "page.html")


def test_client_page_loads_only_the_apps_own_files() -> None:
    page = client_page()
    assert "<!--asset:" not in page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/static/") for s in sources)
    assert 'integrity="sha384-' in page  # the vendored graphql-ws

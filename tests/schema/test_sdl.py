"""docs/schema.graphql is the schema as served: a change to the schema shows in its diff."""

from __future__ import annotations

from pathlib import Path

from homefeed.schema import schema

SDL = Path(__file__).resolve().parents[2] / "docs" / "schema.graphql"


def test_docs_sdl_is_the_schema() -> None:
    assert SDL.read_text() == schema.as_str() + "\n", (
        "docs/schema.graphql differs from the schema: if the change is meant, regenerate it with "
        "`uv run python -m homefeed.schema > docs/schema.graphql` and commit it"
    )

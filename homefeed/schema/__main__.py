"""Print the schema's SDL: `uv run python -m homefeed.schema > docs/schema.graphql`."""

from __future__ import annotations

from homefeed.schema import schema

print(schema.as_str())

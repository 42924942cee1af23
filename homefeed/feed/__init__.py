"""The engine: storage, timelines and feed assembly. Knows nothing of GraphQL."""

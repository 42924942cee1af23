"""PostgreSQL, the source of truth: pools, users, posts, relations, likes, the outbox and feed queries."""

"""The read bench's baseline: the same API over an in-memory snapshot, touching no storage.

The API serves exactly as usual (uvicorn, Strawberry, the same resolvers and loaders, tokens
checked, cursors signed) but every read the home feed makes is a dict look-up in a snapshot
loaded at start-up: no PostgreSQL or Redis is touched while serving. What is left is the cost
of the serving stack itself, the baseline any storage design is measured against.

The bench captures the snapshot (snapshot.py) and serves it with its own app factory
(app.py), named here for the server process it starts; nothing outside the bench knows of it.
"""

# The factory `homefeed serve --app` runs, and the variable naming the snapshot it loads.
APP_FACTORY = "homefeed.bench.baseline.app:baseline_app"
SNAPSHOT_ENV = "HOMEFEED_BENCH_BASELINE_SNAPSHOT"

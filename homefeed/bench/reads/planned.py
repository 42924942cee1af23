"""The `persisted-planned` variant's app factory: the real app, its fast path on the planned executor.

The same server as `persisted` in every other respect, so the two variants, measured in turn in
one run, give what the compiled executor saves over the plan it is generated from.
"""

from __future__ import annotations

from starlette.applications import Starlette

from homefeed.app import create_app
from homefeed.feed import config
from homefeed.schema.execution import PlannedExecutionContext


def planned_fast_path_app() -> Starlette:
    """Factory for the bench's uvicorn processes: settings from the environment."""
    return create_app(config.load(), fast_executor=PlannedExecutionContext)

"""Planned execution of validated queries: graphql-core's semantics without its per-field machinery.

graphql-core executes a document by interpreting it: for every field of every object of every
list item it collects the selection again, builds a resolve info, wraps awaitables and walks
the return type's wrappers, which is most of a home-feed request's CPU. Here, the first
execution of an operation compiles it into a plan (plan.py); later executions walk the plan
(run.py). Persisted operations run their plan's generated code instead (compiled.py). What
they need of graphql-core's and Strawberry's internals is in compat.py.
"""

from __future__ import annotations

from homefeed.schema.execution.run import PlannedExecutionContext

__all__ = ["PlannedExecutionContext"]

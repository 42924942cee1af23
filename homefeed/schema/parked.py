"""Parked subscriptions: a render-once subscription kept as a small record, not a running stream.

A subscription that the live hub serves by writing rendered-once frames to its socket
(broadcast.py) used to keep, for as long as it lived, Strawberry's operation task and the
async-generator chain under it: Strawberry's stream and its extension hooks, graphql-core's
execution context and source iterator, the resolver's generators and the hub's context
manager, about 13 KB per idle subscription (bench live's census), none of which ran for the
events the hub wrote itself.

Here, once Strawberry has started the subscription (validation, limits, cost, rate limits,
the viewer), the resolver registers the viewer with the hub and hands the subscription to its
connection's handler (a `Lot`, app.py), and its stream ends without a `complete`: the
operation stays open under its id. What remains is this record, its hub subscriber and the
sink the hub writes through. Events the hub cannot write straight away (a socket over its
write buffer, a RESYNC, a REMOVED after a relationship change, an answer with errors) wait in
the subscriber's queue; a task made only then renders them exactly as the stream did and
sends them through the handler, with back-pressure, and ends when the queue is empty.

The protocol is unchanged: the client's `complete` and the connection's end unregister the
subscriber (nothing more is written for it, even by a delivery under way); an exception while
rendering ends the operation as Strawberry ends a stream that raised, with a `next` carrying
the error and then `complete`; ping, pong and the connection_init timeout are the handler's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from graphql import GraphQLError

from homefeed.feed.live import Subscriber
from homefeed.resolvers import live
from homefeed.resolvers.connections import home_scope
from homefeed.schema.broadcast import Joining, Lot, RootFactory, Shape, render
from homefeed.schema.errors import with_code

log = logging.getLogger(__name__)


class Parked:
    """One parked subscription: its hub subscriber, and what rendering its events needs."""

    __slots__ = ("_task", "joining", "lot", "operation_id", "root", "schema", "shape", "sub")

    def __init__(
        self, joining: Joining, lot: Lot, operation_id: str, shape: Shape, schema: Any, root: RootFactory
    ) -> None:
        self.joining = joining
        self.lot = lot
        self.operation_id = operation_id
        self.shape = shape
        self.schema = schema
        self.root = root
        self.sub: Subscriber | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register the viewer with the hub (the subscription's start, as the stream did it)."""
        self.sub = await live.attach(self.joining.ctx, self.joining, self.wake)

    async def stop(self) -> None:
        """Unregister from the hub; nothing more is sent for this operation."""
        sub = self.sub
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if sub is not None:
            sub.gone = True  # at once, before waiting for the hub's lock
            await self.joining.ctx.services.live.detach(sub)

    def wake(self) -> None:
        """Something waits in the queue: start sending it, unless that is under way."""
        if self._task is None and self.sub is not None and not self.sub.gone:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        sub = self.sub
        assert sub is not None
        ctx = self.joining.ctx
        scope = home_scope(sub.viewer)
        try:
            while not sub.queue.empty() and not sub.gone:
                event = await sub.next()
                try:
                    update = live.update_for(ctx.services, sub.viewer, scope, event)
                    rendered = await render(self.shape, self.schema, update, ctx, self.root)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await self._fail(exc)
                    return
                message = self._next({"data": rendered.data}, rendered.errors)
                if sub.gone:
                    return
                try:
                    await self.lot.send_message(message)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    return  # the connection is gone: its handler's shutdown unregisters this
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def _next(self, payload: dict[str, Any], errors: list[GraphQLError] | None) -> dict[str, Any]:
        """A `next` message as Strawberry builds it from a result: coded errors, then extensions."""
        if errors:
            self.schema.process_errors(errors)
            payload["errors"] = [with_code(e).formatted for e in errors]
        if self.joining.extensions:
            payload["extensions"] = self.joining.extensions
        return {"id": self.operation_id, "type": "next", "payload": payload}

    async def _fail(self, exc: Exception) -> None:
        # As Strawberry ends a subscription whose source raised: the error as a result, then complete.
        error = exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)
        message = self._next({"data": None}, [error])
        with contextlib.suppress(Exception):
            await self.lot.finish(self.operation_id, message)

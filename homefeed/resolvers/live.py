"""Live home-feed updates for the signed-in viewer, as the subscription receives them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from homefeed.feed.live import Broadcast, Kind, LiveEvent, Subscriber
from homefeed.feed.records import Post
from homefeed.feed.services import Services
from homefeed.loaders import Loaders, shared_for
from homefeed.resolvers.connections import home_scope
from homefeed.resolvers.context import Context


class Together(Protocol):
    """A way to deliver this subscription's events together with others' (the schema's)."""

    @property
    def broadcast(self) -> Broadcast:
        """Where the hub hands this subscription's events."""
        ...

    def sink(self, viewer: int) -> object:
        """What the broadcast keeps for this subscriber."""
        ...


@dataclass(frozen=True, slots=True)
class Update:
    kind: Kind
    post_id: int | None
    post: Post | None
    cursor: str | None
    loaders: Loaders  # fresh for this event, batched with every other subscriber receiving it
    event: LiveEvent  # the hub's event, shared by every subscriber receiving it
    viewer: int


async def home_feed_updates(ctx: Context, together: Together | None = None) -> AsyncIterator[Update]:
    """Every change to the viewer's home feed, as it happens. With `together`, the hub delivers
    what it can to many subscribers at once through it, and only the rest comes here."""
    viewer = await ctx.require_viewer()
    services = ctx.services
    await services.feeds.touch(viewer)  # a live viewer is active: fan-out must reach them
    scope = home_scope(viewer)
    broadcast, sink = (together.broadcast, together.sink(viewer)) if together is not None else (None, None)
    async with services.live.subscribe(viewer, broadcast, sink) as subscriber:
        while True:
            yield update_for(services, viewer, scope, await subscriber.next())


async def attach(ctx: Context, together: Together, wake: Callable[[], None]) -> Subscriber:
    """The viewer's live subscriber, registered with the hub until detached, with no task of its
    own: the hub delivers through `together`, and calls wake when something waits in its queue."""
    viewer = await ctx.require_viewer()
    services = ctx.services
    await services.feeds.touch(viewer)
    return await services.live.attach(viewer, together.broadcast, together.sink(viewer), wake)


def update_for(services: Services, viewer: int, scope: str, event: LiveEvent) -> Update:
    """An event of the hub as this viewer's subscription receives it (`scope`: its home feed's)."""
    loaders = shared_for(services, event).for_viewer(viewer)
    if event.kind is Kind.RESYNC:
        return Update(Kind.RESYNC, None, None, None, loaders, event, viewer)
    if event.post is not None:
        loaders.posts.prime(event.post.id, event.post)
    return Update(
        event.kind,
        event.post_id,
        event.post,
        services.cursors.encode(scope, event.post_id),
        loaders,
        event,
        viewer,
    )

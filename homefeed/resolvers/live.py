"""Live home-feed updates for the signed-in viewer, as the subscription receives them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from homefeed.feed.live import Kind, LiveEvent
from homefeed.feed.records import Post
from homefeed.loaders import Loaders, shared_for
from homefeed.resolvers.connections import home_scope
from homefeed.resolvers.context import Context


@dataclass(frozen=True, slots=True)
class Update:
    kind: Kind
    post_id: int | None
    post: Post | None
    cursor: str | None
    loaders: Loaders  # fresh for this event, batched with every other subscriber receiving it
    event: LiveEvent  # the hub's event, shared by every subscriber receiving it
    viewer: int


async def home_feed_updates(ctx: Context) -> AsyncIterator[Update]:
    """Every change to the viewer's home feed, as it happens."""
    viewer = await ctx.require_viewer()
    services = ctx.services
    await services.feeds.touch(viewer)  # a live viewer is active: fan-out must reach them
    scope = home_scope(viewer)
    async with services.live.subscribe(viewer) as subscriber:
        while True:
            event = await subscriber.next()
            loaders = shared_for(services, event).for_viewer(viewer)
            if event.kind is Kind.RESYNC:
                yield Update(Kind.RESYNC, None, None, None, loaders, event, viewer)
                continue
            if event.post is not None:
                loaders.posts.prime(event.post.id, event.post)
            yield Update(
                event.kind,
                event.post_id,
                event.post,
                services.cursors.encode(scope, event.post_id),
                loaders,
                event,
                viewer,
            )

"""The home feed's resolver."""

from __future__ import annotations

from homefeed.feed.errors import Unauthenticated
from homefeed.resolvers.connections import PostSlice, decode_after, home_scope, hydrate, page_size
from homefeed.resolvers.context import GONE, Context


async def home_feed(ctx: Context, first: int | None, after: str | None) -> PostSlice:
    """A page of the signed-in user's home feed."""
    viewer_id = ctx.claimed_viewer()
    if viewer_id is None:
        viewer_id = await ctx.require_viewer()  # raises: no token
    scope = home_scope(viewer_id)
    page = await ctx.services.feeds.home(viewer_id, page_size(first), decode_after(ctx, scope, after))
    # The feed read tells whether the token's user exists, which saves the request a look-up.
    if page.viewer_known is None:
        await ctx.require_viewer()
    elif not page.viewer_known:
        raise Unauthenticated(GONE)
    else:
        ctx.vouch(viewer_id)
    return await hydrate(ctx, scope, page, after=after)

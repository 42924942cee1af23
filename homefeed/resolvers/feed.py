"""The home feed's resolvers: LATEST (newest first) and RANKED ("For You")."""

from __future__ import annotations

from homefeed.feed.errors import FeedError, Unauthenticated
from homefeed.feed.ranking.impressions import LATEST, RANKED
from homefeed.feed.ranking.ranker import RankedPage
from homefeed.resolvers.connections import PostSlice, decode_after, home_scope, hydrate, page_size
from homefeed.resolvers.context import GONE, Context

# A RANKED cursor's scope: the viewer, then the snapshot's name, or this for LATEST order past it.
PAST_SNAPSHOT = "latest"


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
    ctx.services.impressions.record(viewer_id, LATEST, page.post_ids)
    return await hydrate(ctx, scope, page, after=after)


def ranked_scope(viewer: int) -> str:
    """The prefix of every cursor of a viewer's ranked feed."""
    return f"ranked:{viewer}:"


async def ranked_feed(ctx: Context, first: int | None, after: str | None) -> PostSlice:
    """A page of the signed-in user's ranked feed: the first ranks and keeps a snapshot; a cursor
    names the snapshot and a position in it, or (past it) a post id in LATEST order."""
    viewer_id = ctx.claimed_viewer()
    if viewer_id is None:
        viewer_id = await ctx.require_viewer()  # raises: no token
    try:
        ranked = await _ranked(ctx, viewer_id, first, after)
    except FeedError:
        await ctx.require_viewer()  # a user who is gone hears that first
        raise
    # Snapshot posts were shown by the visibility statement, which finds rows only for a viewer
    # who exists; past the snapshot the LATEST read says what it found. So, as for LATEST, no
    # separate look-up of the token's user unless the page proves nothing.
    known = (
        True
        if any(p is not None for p in ranked.positions)
        else (ranked.page.viewer_known if ranked.snapshot is None else None)
    )
    if known is None:
        await ctx.require_viewer()
    elif not known:
        raise Unauthenticated(GONE)
    else:
        ctx.vouch(viewer_id)
    prefix = ranked_scope(viewer_id)
    _log(ctx, viewer_id, ranked)
    return await hydrate(
        ctx, prefix, ranked.page, after=after, cursors=_cursors(ctx, prefix, ranked), scores=_scores(ranked)
    )


async def _ranked(ctx: Context, viewer_id: int, first: int | None, after: str | None) -> RankedPage:
    size = page_size(first)
    ranker = ctx.services.ranker
    prefix = ranked_scope(viewer_id)
    if after is None:
        return await ranker.first(viewer_id, size)
    scope, position = ctx.services.cursors.decode_under(prefix, after)
    name = scope[len(prefix) :]
    if name == PAST_SNAPSHOT:
        return await ranker.below(viewer_id, size, position)
    return await ranker.at(viewer_id, size, name, position + 1)


def _log(ctx: Context, viewer: int, ranked: RankedPage) -> None:
    """Log the page's impressions (sampled): ranked posts at their snapshot position, the
    LATEST tail past the snapshot at its place on the page."""
    pairs = list(zip(ranked.page.post_ids, ranked.positions, strict=True))
    record = ctx.services.impressions.record
    record(
        viewer,
        RANKED,
        [i for i, p in pairs if p is not None],
        [p for _, p in pairs if p is not None],
        ranked.features,
    )
    tail = [(k, i) for k, (i, p) in enumerate(pairs) if p is None]
    record(viewer, LATEST, [i for _, i in tail], [k for k, _ in tail])


def _cursors(ctx: Context, prefix: str, ranked: RankedPage) -> dict[int, str]:
    encode = ctx.services.cursors.encode
    snapshot, past = prefix + (ranked.snapshot or ""), prefix + PAST_SNAPSHOT
    return {
        post_id: encode(past, post_id) if position is None else encode(snapshot, position)
        for post_id, position in zip(ranked.page.post_ids, ranked.positions, strict=True)
    }


def _scores(ranked: RankedPage) -> dict[int, float]:
    return {
        post_id: score
        for post_id, score in zip(ranked.page.post_ids, ranked.scores, strict=True)
        if score is not None
    }

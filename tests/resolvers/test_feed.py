"""Home feed pages answer author and viewer flags from the read itself, and from loaders past it."""

from __future__ import annotations

from tests.api import Api
from tests.conftest import ServicesFactory

PAGE = """query($f: Int, $a: String) { homeFeed(first: $f, after: $a) {
  edges { node { id text likeCount viewerHasLiked author { handle viewerFollows followerCount } } }
  pageInfo { hasNextPage endCursor } } }"""
LIKE = "mutation($p: ID!) { likePost(id: $p) { id } }"


async def test_cached_and_deeper_posts_of_one_page_get_the_same_flags(make_services: ServicesFactory) -> None:
    # A 3-entry timeline: a page of 8 is partly the timeline's (hydrated by the visibility
    # query) and partly PostgreSQL's past it (hydrated through the loaders).
    services = await make_services(timeline_size=3)
    async with Api.running(services) as api:
        viewer, ann, bob, eve = [await api.sign_up(h) for h in ("viewer", "ann", "bob", "eve")]
        for author in (ann, bob):
            (await api.act(viewer, "follow", author)).ok()
        (await api.act(ann, "follow", viewer)).ok()
        posts: list[tuple[str, str]] = []  # (id, author handle), oldest first
        for i in range(3):
            for who in (ann, bob, viewer, eve):  # eve is not followed: never in the feed
                posts.append((await api.post(who, f"{who.handle} {i}"), who.handle))
        feed_posts = [(p, h) for p, h in posts if h != "eve"]
        liked = {feed_posts[0][0], feed_posts[-1][0], feed_posts[4][0]}  # oldest, newest, middle
        for post_id in liked:
            (await api.gql(LIKE, {"p": post_id}, token=viewer.token)).ok()

        for attempt in range(2):  # the first read rebuilds the timeline; the second uses it
            page = (await api.gql(PAGE, {"f": 8}, token=viewer.token)).ok()["homeFeed"]
            nodes = [e["node"] for e in page["edges"]]
            expected = list(reversed(feed_posts))[:8]
            assert [n["id"] for n in nodes] == [p for p, _ in expected], attempt
            for node, (post_id, handle) in zip(nodes, expected, strict=True):
                assert node["author"]["handle"] == handle
                assert node["viewerHasLiked"] == (post_id in liked), (attempt, node)
                assert node["likeCount"] == (1 if post_id in liked else 0)
                assert node["author"]["viewerFollows"] == (handle != "viewer"), (attempt, node)
            rest = (
                await api.gql(PAGE, {"f": 8, "a": page["pageInfo"]["endCursor"]}, token=viewer.token)
            ).ok()
            tail = [e["node"] for e in rest["homeFeed"]["edges"]]
            assert [n["id"] for n in tail] == [p for p, _ in reversed(feed_posts)][8:]
            assert [n["viewerHasLiked"] for n in tail] == [p in liked for p, _ in reversed(feed_posts)][8:]


async def test_authors_in_a_feed_show_their_join_date_and_current_counts(
    make_services: ServicesFactory,
) -> None:
    # A process remembers authors' names and join dates (they never change) but not their
    # counts, which a page asking for them loads as they are now.
    services = await make_services()
    async with Api.running(services) as api:
        viewer, ann, bob, eve = [await api.sign_up(h) for h in ("viewer", "ann", "bob", "eve")]
        for author in (ann, bob):
            (await api.act(viewer, "follow", author)).ok()
            await api.post(author, f"by {author.handle}")
        await api.post(viewer, "mine")
        profile = "query($h: String!) { user(handle: $h) { createdAt followerCount followingCount } }"
        query = (
            "{ homeFeed(first: 5) { nodes { author { handle createdAt followerCount followingCount } } } }"
        )
        for attempt in range(3):  # a rebuild, then the timeline; eve follows ann before the last
            if attempt == 2:
                (await api.act(eve, "follow", ann)).ok()
            nodes = (await api.gql(query, token=viewer.token)).ok()["homeFeed"]["nodes"]
            assert [n["author"]["handle"] for n in nodes] == ["viewer", "bob", "ann"], attempt
            for node in nodes:
                author = node["author"]
                stored = (await api.gql(profile, {"h": author["handle"]})).ok()["user"]
                assert {k: author[k] for k in stored} == stored, attempt
            assert nodes[2]["author"]["followerCount"] == (2 if attempt == 2 else 1)

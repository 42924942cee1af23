"""The web client at `/` in a real browser, offline but for the app: the live feed as a user sees it.

Two users, A follows B; A opens `/` and logs in; B posts over the API; A's page shows the
"new posts" pill within 2 s; a click puts the post at the top; B deletes it and it disappears.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, expect

from homefeed.feed.services import Services
from tests.api import Api
from tests.browser.conftest import offline_page
from tests.server import running_server

PILL_WITHIN_MS = 2_000  # the bound from B's post to A's pill


async def test_a_followed_post_arrives_live_and_leaves_when_deleted(
    browser: Browser, services: Services, output_dir: Path
) -> None:
    async with running_server(services) as base, httpx.AsyncClient(base_url=base) as client:
        api = Api(client)
        ada, bea = await api.sign_up("ada"), await api.sign_up("bea")
        followed = await api.gql(
            "mutation($u: ID!) { follow(userId: $u) { id } }", {"u": bea.id}, token=ada.token
        )
        followed.ok()

        page, blocked = await offline_page(browser, base)
        await page.set_viewport_size({"width": 720, "height": 640})
        await page.goto(f"{base}/")
        await page.get_by_label("Handle", exact=True).fill("ada")
        await page.get_by_label("Password").fill("password123")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_text("Signed in as")).to_be_visible()
        for _ in range(100):  # the page's live subscription is registered
            if services.live.subscriber_count >= 1:
                break
            await asyncio.sleep(0.05)
        assert services.live.subscriber_count >= 1

        post_id = await api.post(bea, "hello from bea, live")
        pill = page.get_by_role("button", name=re.compile(r"^1 new post$"))
        await expect(pill).to_be_visible(timeout=PILL_WITHIN_MS)
        await pill.click()
        first = page.locator("#feed > li").first
        await expect(first).to_contain_text("hello from bea, live")
        await expect(first).to_have_attribute("data-id", post_id)
        await expect(pill).to_be_hidden()

        like = first.get_by_role("button", name=re.compile("Like"))
        await like.click()
        await expect(like).to_have_attribute("aria-pressed", "true")
        await page.screenshot(path=str(output_dir / "client.png"), full_page=True)

        await page.get_by_role("tab", name="Ranked").click()
        await expect(page.get_by_role("tab", name="Ranked")).to_have_attribute("aria-selected", "true")
        await expect(page.locator(f'#feed > li[data-id="{post_id}"]')).to_have_count(1)

        await api.gql("mutation($p: ID!) { deletePost(id: $p) }", {"p": post_id}, token=bea.token)
        await expect(page.locator(f'#feed > li[data-id="{post_id}"]')).to_have_count(0)
        assert blocked == []


async def test_follow_by_handle_resyncs_and_the_feed_scrolls_on(browser: Browser, services: Services) -> None:
    async with running_server(services) as base, httpx.AsyncClient(base_url=base) as client:
        api = Api(client)
        await api.sign_up("ada")
        bea = await api.sign_up("bea")
        texts = [f"post number {n}" for n in range(25)]  # more than the client's page of 20
        for text in texts:
            await api.post(bea, text)

        page, blocked = await offline_page(browser, base)
        await page.goto(f"{base}/")
        await page.get_by_label("Handle", exact=True).fill("ada")
        await page.get_by_label("Password").fill("password123")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_text("Signed in as")).to_be_visible()
        await expect(page.locator("#feed > li")).to_have_count(0)

        # Following brings bea's earlier posts: the server sends RESYNC and the page reloads.
        await page.get_by_label("Handle to follow").fill("@bea")
        await page.get_by_role("button", name="Follow", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text("You follow @bea.")
        posts = page.locator("#feed > li")
        await expect(posts).to_have_count(20)
        await expect(posts.first).to_contain_text("post number 24")

        # Scrolling to the end loads the next page on the cursor.
        await page.locator("#sentinel").scroll_into_view_if_needed()
        await expect(posts).to_have_count(25)
        await expect(posts.last).to_contain_text("post number 0")
        await expect(page.get_by_text("That's everything.")).to_be_visible()
        assert blocked == []

"""GraphiQL at /graphql works with the network blocked except for the app itself."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx
from playwright.async_api import Browser, expect

from homefeed.feed.services import Services
from tests.browser.conftest import offline_page
from tests.server import running_server

QUERY = '{ user(handle: "grace") { handle displayName } }'
SUBSCRIPTION = "subscription { homeFeedUpdates { kind post { text } } }"
SIGN_UP = 'mutation { signUp(handle: "grace", password: "password123", displayName: "Grace H") { token } }'


async def test_graphiql_renders_and_runs_a_query_offline(browser: Browser, services: Services) -> None:
    async with running_server(services) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            await http.post("/graphql", json={"query": SIGN_UP})
        page, blocked = await offline_page(browser, base)
        await page.goto(f"{base}/graphql?{urlencode({'q': QUERY})}")
        await expect(page.locator(".graphiql-editors")).to_be_visible(timeout=15_000)
        # The explorer's button shows its script loaded and registered with GraphiQL.
        await expect(page.get_by_role("button", name="Show GraphiQL Explorer")).to_be_attached()
        await page.locator(".graphiql-execute-button").click()
        await expect(page.locator(".result-window")).to_contain_text('"displayName": "Grace H"')
        assert blocked == []


async def test_graphiql_runs_a_subscription_offline(browser: Browser, services: Services) -> None:
    async with running_server(services) as base, httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/graphql", json={"query": SIGN_UP})).json()["data"]["signUp"]["token"]
        page, blocked = await offline_page(browser, base)
        headers = json.dumps({"Authorization": f"Bearer {token}"})
        await page.goto(f"{base}/graphql?{urlencode({'q': SUBSCRIPTION, 'headers': headers})}")
        await expect(page.locator(".graphiql-editors")).to_be_visible(timeout=15_000)
        await page.locator(".graphiql-execute-button").click()
        # The subscription is live once the server counts it; then a post reaches the page.
        for _ in range(100):
            if services.live.subscriber_count > 0:
                break
            await page.wait_for_timeout(100)
        await http.post(
            "/graphql",
            json={"query": 'mutation { createPost(text: "hello from the API") { id } }'},
            headers={"Authorization": f"Bearer {token}"},
        )
        await expect(page.locator(".result-window")).to_contain_text('"text": "hello from the API"')
        assert blocked == []

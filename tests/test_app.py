"""The ASGI app around GraphQL: health, metrics, GraphiQL."""

from __future__ import annotations

from redis.asyncio import Redis

from homefeed.feed.config import Settings
from homefeed.feed.services import build_services
from homefeed.feed.store.pool import create_pool
from homefeed.web import vendored
from scripts.refresh_graphiql import integrity
from tests.api import Api
from tests.conftest import FAST_PASSWORDS
from tests.exposition import sample


async def test_healthz(api: Api) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}


async def test_healthz_reports_unreachable_redis(settings_: Settings) -> None:
    assert settings_.database_url
    pool = await create_pool(settings_.database_url, min_size=1, max_size=1)
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    services = build_services(settings_, pool, dead, passwords=FAST_PASSWORDS)
    try:
        async with Api.running(services) as api:
            response = await api.http.get("/healthz")
    finally:
        await services.close()
    # Redis holds only derived data: the service is degraded, not down.
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "postgres": "ok", "redis": "unreachable"}


async def test_metrics_count_and_time_named_operations(api: Api) -> None:
    before = (await api.http.get("/metrics")).text
    for _ in range(3):
        (await api.gql("query MetricsProbe { viewer { id } }")).ok()
    await api.gql("query MetricsProbe { nope }")
    response = await api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    counter = "homefeed_graphql_requests_total"
    ok = sample(after, counter, operation="MetricsProbe", outcome="ok")
    assert ok - sample(before, counter, operation="MetricsProbe", outcome="ok") == 3
    failed = sample(after, counter, operation="MetricsProbe", outcome="error")
    assert failed - sample(before, counter, operation="MetricsProbe", outcome="error") == 1
    histogram = "homefeed_graphql_request_seconds_count"
    timed = sample(after, histogram, operation="MetricsProbe") - sample(
        before, histogram, operation="MetricsProbe"
    )
    assert timed >= 3
    assert sample(after, "homefeed_graphql_request_seconds_bucket", operation="MetricsProbe", le="+Inf") >= 3
    assert "# TYPE homefeed_graphql_request_seconds histogram" in after


async def test_graphiql_is_served_to_browsers(api: Api) -> None:
    response = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_the_web_client_is_served_at_the_root(api: Api) -> None:
    page = await api.http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/client/app.js">' in page.text
    assert (await api.http.get("/static/client/app.js")).status_code == 200
    assert (await api.http.get("/static/vendor/graphql-ws.min.js")).status_code == 200


async def test_queries_work_over_get(api: Api) -> None:
    response = await api.http.get("/graphql", params={"query": "{ viewer { id } }"})
    assert response.status_code == 200
    assert response.json() == {
        "data": {"viewer": None},
        "extensions": {"cost": {"requested": 1, "budget": 1000}},
    }


async def test_vendored_assets_are_sent_compressed_or_plain_and_match_their_integrity(api: Api) -> None:
    for name, asset in vendored().items():
        url = f"/static/vendor/{name}"
        packed = await api.http.get(url, headers={"Accept-Encoding": "gzip"})
        assert packed.status_code == 200 and packed.headers["content-encoding"] == "gzip", name
        plain = await api.http.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers, name
        # httpx decodes the gzip answer: both bodies are the file the browser checks.
        assert integrity(packed.content) == integrity(plain.content) == asset.integrity, name
    assert (await api.http.get("/static/vendor/manifest.json")).status_code == 404
    assert (await api.http.get("/static/vendor/nothing.js")).status_code == 404

"""The ASGI app: /graphql (HTTP and GraphiQL), /static, /healthz, /metrics. The lifespan opens the pools."""

from __future__ import annotations

import asyncio
import gc
import gzip
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import lru_cache, partial
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette import status
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

import homefeed.feed.metrics  # noqa: F401  (registers the engine's series: see metrics())
from homefeed.asgi import BadContentLength, FastGraphQL, Head, declared_length, read_body, replaying
from homefeed.feed import config
from homefeed.feed.addresses import Network, client_address
from homefeed.feed.config import Settings, SettingsError
from homefeed.feed.errors import FeedError, RateLimited
from homefeed.feed.services import Services, open_services
from homefeed.resolvers.context import Context
from homefeed.schema import LIMIT_RULES, MAX_TOKENS, schema
from homefeed.schema.broadcast import OUTLET, Lot, Outlet, frame, graphql_ws_head, transport_ws_head
from homefeed.schema.errors import RETRY_AFTER, CodedSchema, code_error_frame, with_code
from homefeed.schema.execution.compat import ExecutionContext
from homefeed.schema.execution.compiled import CompiledExecutionContext
from homefeed.schema.parked import Parked
from homefeed.schema.persisted import (
    DocumentStore,
    ManifestError,
    PersistedOperations,
    PersistedQueryRefused,
    load_manifest,
)
from homefeed.schema.persisted.fast import FastPath
from homefeed.schema.persisted.operations import document_checker
from homefeed.web import STATIC, STATIC_URL, asset_gzip, asset_media_type, client_page, graphiql_page
from homefeed.websocket import FRAME_WRITER
from homefeed.workers.fanout_worker import FanoutWorker

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
GRAPHQL_PATH = "/graphql"
MAX_SUBSCRIPTIONS = 10


class _CodedFrames:
    """Both websocket protocols' shared part: the schema's websocket face, and every frame either
    coded like an HTTP error or sent as prebuilt text."""

    schema: Any
    websocket: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = _websocket_schema(self.schema)

    async def send_message(self, message: Any) -> None:
        text = frame(message)
        if text is None:
            await super().send_message(code_error_frame(message))  # type: ignore[misc]
        else:
            await _send_text(self.websocket, text)

    def outlet(self, head: bytes, lot: Lot | None = None, operation_id: str = "") -> Outlet | None:
        """Where the hub may write an operation's frames (opening with head) straight to this
        socket; None when the server offers no frame writer (another ASGI server)."""
        ws = getattr(self.websocket, "ws", None)
        writer = ws.scope.get("extensions", {}).get(FRAME_WRITER) if ws is not None else None
        return Outlet(writer, head, lot, operation_id) if writer is not None else None


class TransportWSHandler(_CodedFrames, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, speaking the same error language as HTTP, keeping render-once
    subscriptions as records once started (schema/parked.py): a `Lot`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parked: dict[str, Parked] = {}

    def park(self, operation_id: str, parked: Any) -> bool:
        operation = self.operations.get(operation_id)
        if operation is None:
            return False
        # Its stream ends now, and Strawberry sends `complete` at the end of a stream unless the
        # operation is completed already: it stays open, under its id, as the parked record.
        operation.completed = True
        self.parked[operation_id] = parked
        return True

    async def finish(self, operation_id: str, message: dict[str, Any]) -> None:
        # As an operation whose stream ended: forgotten before its last messages are sent.
        self.operations.pop(operation_id, None)
        parked = self.parked.pop(operation_id, None)
        if parked is not None:
            await parked.stop()
        await self.send_message(message)
        await self.send_message({"id": operation_id, "type": "complete"})

    async def cleanup_operation(self, operation_id: str) -> None:
        # The client's `complete`, or the connection's end (shutdown cleans up every operation).
        parked = self.parked.pop(operation_id, None)
        if parked is not None:
            await parked.stop()
        await super().cleanup_operation(operation_id)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_init_received:
            # The timeout's task is cancelled now; kept, the finished task and its context stay
            # with every idle connection (about 0.8 KB, bench live's census). Shutting down
            # has nothing left to cancel.
            self.connection_init_timeout_task = None

    async def handle_subscribe(self, message: Any) -> None:
        # The operation's task, created in there, inherits where its frames may be written.
        token = OUTLET.set(self.outlet(transport_ws_head(message["id"]), self, message["id"]))
        try:
            await super().handle_subscribe(message)
        finally:
            OUTLET.reset(token)


class LegacyWSHandler(_CodedFrames, BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws, speaking the same error language as HTTP."""

    async def handle_start(self, message: Any) -> None:
        token = OUTLET.set(self.outlet(graphql_ws_head(message["id"])))
        try:
            await super().handle_start(message)
        finally:
            OUTLET.reset(token)


async def _send_text(websocket: Any, text: str) -> None:
    # A payload rendered once for many subscribers (schema/broadcast.py) goes out as its prebuilt
    # text with this subscriber's operation id, without another JSON encoding. Strawberry's
    # adapter sends only what it encodes itself, so this writes to the Starlette socket under it.
    try:
        await websocket.ws.send_text(text)
    except WebSocketDisconnect as exc:
        raise WebSocketDisconnected from exc


def _websocket_schema(schema: Any) -> Any:
    # The view holds the HTTP face of the schema; a websocket is where subscriptions run.
    return schema.for_websockets() if isinstance(schema, CodedSchema) else schema


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI app with our context: services from the app, viewer from the token."""

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self, *args: Any, persisted: PersistedOperations, fast: FastPath | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.persisted = persisted
        self.fast = fast

    async def get_context(self, request: Request | WebSocket, response: object) -> Context:
        return request_context(
            request.app.state.services,
            request.client.host if request.client else None,
            request.headers.getlist("x-forwarded-for"),
            request.headers.get("authorization"),
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        # Strawberry's page loads its scripts from a public CDN: ours loads the vendored copies.
        return HTMLResponse(graphiql_page())

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket from its connection_init payload: {"authorization": "Bearer …"}."""
        params = context.connection_params or {}
        raw = params.get("authorization", params.get("Authorization"))
        token = bearer(raw) if isinstance(raw, str) else context.token
        if token is None:
            raise ConnectionRejectionError(
                _rejection("UNAUTHENTICATED", "send authorization in connection_init")
            )
        context.use_token(token)
        try:
            await context.require_viewer()
        except FeedError as exc:
            raise ConnectionRejectionError(_rejection(exc.code, str(exc))) from None
        accepted: UnsetType = UNSET
        return accepted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # Straight to the handler: each layer between is a coroutine frame that an open
            # websocket keeps suspended for as long as it lives.
            await self.run(WebSocket(scope, receive=receive, send=send))
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as exc:
            # Strawberry answers unparseable requests in plain text; clients expect errors with a code.
            response = error_response(exc.reason, exc.status_code)
        except PersistedQueryRefused as exc:
            response = error_response(exc.message, exc.status, exc.code)
        await response(scope, receive, send)

    async def answer_fast(self, fast: FastPath, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer a persisted query without the view (None), or give back the request to it:
        the receive callable that replays what was read. Anything but a plain, valid persisted
        query within its budget goes to the view, which answers it in its usual words.

        Read from the ASGI scope itself (see homefeed/asgi.py): the few headers it needs in one pass,
        the body from the messages, with no Starlette request object."""
        head = Head(scope["headers"])
        if head.accept is not None and any(streaming in head.accept for streaming in _STREAMING):
            return receive
        replay: Receive = receive
        method = scope["method"]
        if method == "GET":
            fields = _get_fields(Request(scope=scope, receive=receive))
        elif method == "POST" and head.content_type is not None and "application/json" in head.content_type:
            messages, body = await read_body(receive)
            replay = replaying(messages, receive)
            if body is None:  # the client went away: the view meets that as it always does
                return replay
            fields = _json_object(body)
        else:
            return receive
        if fields is None or "query" in fields or not any(k in fields for k in _PERSISTED_FIELDS):
            return replay
        try:
            resolved = self.persisted.resolve(fields)
        except PersistedQueryRefused:
            return replay
        text, name = resolved.get("query"), resolved.get("operationName")
        variables, extensions = resolved.get("variables"), resolved.get("extensions")
        if not (
            isinstance(text, str)
            and isinstance(name, str | None)
            and isinstance(variables, dict | None)
            and isinstance(extensions, dict | None)
        ):
            return replay
        prepared = fast.prepare(text, name)
        if prepared is None:
            return replay
        client = scope.get("client")
        context = request_context(
            scope["app"].state.services, client[0] if client else None, head.forwarded_for, head.authorization
        )
        try:
            answer = await fast.run(prepared, variables, extensions, context)
        except RateLimited as exc:
            await rate_limited_response(exc)(scope, receive, send)
            return None
        if answer is None:
            return replay
        await send_json(send, answer)
        return None

    def decode_json(self, data: str | bytes) -> object:
        # orjson.JSONDecodeError subclasses json.JSONDecodeError, which Strawberry turns into a 400.
        return orjson.loads(data)

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        # Answers are encoded with orjson (bytes, no str round trip). HTTP only: websockets keep
        # encode_json's text frames, which graphql-ws clients require.
        response = Response(
            orjson.dumps(response_data),
            status_code=sub_response.status_code or status.HTTP_200_OK,
            media_type="application/json",
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        wait = refused_for(response_data)
        if wait is not None:
            # The whole request was refused by a rate limit: say so at the HTTP level too, for
            # proxies and HTTP clients that back off on 429 without reading GraphQL errors.
            response.status_code = status.HTTP_429_TOO_MANY_REQUESTS
            response.headers["Retry-After"] = str(wait)
        return response

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        # Strawberry assumes an object (or a batch list) and crashes with a 500 on any other JSON value.
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "the request body must be a JSON object")
        # Bytes are a POST body; the view also parses GET's variables and extensions (text)
        # with this, and those must not be read as requests.
        if isinstance(data, bytes) and isinstance(parsed, dict):
            return self.persisted.resolve(parsed)
        return parsed

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        """GET's parameters, with a persisted document's text under `query`."""
        return dict(self.persisted.resolve(super().parse_query_params(params)))

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a persisted document has no `query` either, and wants its answer.
        params = request.query_params
        named = any(k in params for k in ("extensions", "documentId", "doc_id"))
        return not named and super().should_render_graphql_ide(request)

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        # Syntax errors skip the schema's operation hooks: give every error its code here too.
        if result.errors:
            result.errors = [with_code(e) for e in result.errors]
        return await super().process_result(request, result)


# Accept values asking for a streamed answer (multipart subscriptions, SSE): the view's business.
_STREAMING = ("multipart/mixed", "text/event-stream")
# Where a request names a persisted document (the fast path's only business).
_PERSISTED_FIELDS = ("extensions", "documentId", "doc_id")


def _json_object(raw: str | bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _get_fields(request: Request) -> dict[str, Any] | None:
    """A GET request's fields as the view reads them, JSON ones decoded; None if one is not JSON."""
    fields: dict[str, Any] = dict(request.query_params)
    for name in ("variables", "extensions"):
        raw = fields.get(name)
        if raw:
            decoded = _json_object(raw)
            if decoded is None:
                return None
            fields[name] = decoded
    return fields


def request_context(
    services: Services, peer: str | None, forwarded_for: list[str], authorization: str | None
) -> Context:
    """An HTTP request's context: its token, and the address the rate limits count it under."""
    client = _client_address(peer, tuple(forwarded_for), services.settings.trusted_proxies)
    return Context(services=services, token=bearer(authorization), client_key=client)


@lru_cache(maxsize=4096)
def _client_address(peer: str | None, forwarded_for: tuple[str, ...], trusted: tuple[Network, ...]) -> str:
    # Remembered: a client sends many requests from the same peer, and parsing its address
    # was 1% of a persisted read's samples.
    return client_address(peer, forwarded_for, trusted)


async def send_json(send: Send, body: bytes) -> None:
    """A 200 JSON answer, its two ASGI messages sent directly: what `Response(body,
    media_type="application/json")` sends (the same headers, in its order), without building
    the response object and its header list for every answer of the fast path."""
    headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_JSON_TYPE = (b"content-type", b"application/json")


def rate_limited_response(exc: RateLimited) -> Response:
    """The answer to a request refused as a whole by a rate limit, as the view gives it."""
    error = with_code(GraphQLError(str(exc), original_error=exc)).formatted
    response = JSONResponse({"data": None, "errors": [error]}, status_code=status.HTTP_429_TOO_MANY_REQUESTS)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def refused_for(response: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> int | None:
    """Seconds to wait if a rate limit refused the whole answer (no data, every error
    RATE_LIMITED), else None. Partly answered requests keep their 200."""
    if not isinstance(response, dict) or response.get("data") is not None:
        return None
    waits: list[int] = []
    error: Any
    for error in response.get("errors") or []:
        extensions = error.get("extensions") or {}
        wait = extensions.get(RETRY_AFTER)
        if extensions.get("code") != RateLimited.code or not isinstance(wait, int):
            return None
        waits.append(wait)
    return max(waits) if waits else None


def bearer(header: str | None) -> str | None:
    """The token of an Authorization value; anything but a well-formed bearer token is kept as a bad token."""
    header = (header or "").strip()
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else header


def _rejection(code: str, message: str) -> dict[str, object]:
    return {"message": message, "extensions": {"code": code}}


class BodyLimit:
    """Rejects request bodies over a size limit before anything parses them, and requests
    whose Content-Length is not one number (see declared_length)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = declared_length(scope["headers"])
        except BadContentLength:
            await error_response("invalid Content-Length", 400)(scope, receive, send)
            return
        if declared is not None and declared > self.limit:
            await _too_large(scope, receive, send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(scope, receive, send, self.limit)


class _BodyTooLarge(Exception):
    pass


def error_response(message: str, status_code: int, code: str = "BAD_USER_INPUT") -> Response:
    """A GraphQL-shaped error answer for a request rejected before GraphQL could run."""
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status_code
    )


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    await error_response(f"request body over {limit} bytes", 413)(scope, receive, send)


async def healthz(request: Request) -> Response:
    """PostgreSQL and Redis reachability. 503 only when PostgreSQL, the source of truth, is down."""
    services: Services = request.app.state.services

    async def postgres() -> bool:
        try:
            async with asyncio.timeout(2):
                one: int = await services.pool.fetchval("SELECT 1")
            return one == 1
        except Exception:
            return False

    async def redis() -> bool:
        try:
            async with asyncio.timeout(2):
                pong: bool = await services.redis.ping()
            return pong
        except Exception:
            return False

    pg_ok, redis_ok = await asyncio.gather(postgres(), redis())
    body = {
        "status": "ok" if pg_ok and redis_ok else ("degraded" if pg_ok else "down"),
        "postgres": "ok" if pg_ok else "unreachable",
        "redis": "ok" if redis_ok else "unreachable",
    }
    return JSONResponse(body, status_code=200 if pg_ok else 503)


async def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's metrics: GraphQL's, the engine's, the process's."""
    # The engine's series are module-level objects registered when homefeed.feed.metrics is
    # imported; the import at the top lists every one from the first scrape, before the code
    # that updates some of them (a dead job, a fallback read) has run in this process.
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def index(request: Request) -> Response:
    """The web client: sign in, post, follow, and the home feed with its live updates."""
    return HTMLResponse(client_page())


async def vendor_asset(request: Request) -> Response:
    """A vendored script or stylesheet, sent as stored (gzip) to every client that accepts it."""
    name = request.path_params["name"]
    stored = asset_gzip(name)
    if stored is None:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {"Vary": "Accept-Encoding", "Cache-Control": "public, max-age=86400"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(stored, media_type=asset_media_type(name), headers=headers)
    return Response(gzip.decompress(stored), media_type=asset_media_type(name), headers=headers)


# Objects allocated between collections of the youngest generation (CPython's default is 700).
GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Make the cyclic GC cheap for a server holding thousands of long-lived websocket objects.

    Profiled with a thousand live subscribers, CPython's default thresholds spent a large share
    of the process's CPU in the collector while an update went out (each delivery keeps many
    objects in flight long enough to be promoted, so full collections over every
    subscription's objects ran again and again), which the delivery lag paid for. Freezing
    what start-up built (modules, the schema) takes it out of every later collection; rarer
    young collections still reclaim cyclic garbage, a little later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    opener: Callable[[Settings], Awaitable[Services]] = open_services,
    fast_path: bool = True,
    fast_executor: type[ExecutionContext] = CompiledExecutionContext,
) -> Starlette:
    """The app. Given services, it uses them; else its lifespan opens them from settings with
    `opener` (another opener serves the same stack over other services, as a benchmark may).
    Without `fast_path`, persisted queries go through Strawberry's view like any other (tests
    compare the two; benchmarks measure the difference). `fast_executor`: the fast path's
    executor (a benchmark compares the compiled one with the planned one)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        opened = await opener(effective)
        app.state.services = opened
        tune_gc()
        stop = asyncio.Event()
        worker = None
        if opened.settings.inprocess_worker:
            # Fan-out runs beside the API; more workers can run as `homefeed worker` processes.
            worker = asyncio.create_task(FanoutWorker(opened).run_forever(stop), name="fanout-worker")
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            await opened.close()

    effective = services.settings if services is not None else (settings or config.load())
    persisted = persisted_operations(effective)
    trusted = persisted.manifest.bodies if persisted.manifest is not None else None
    graphql = GraphQLApp(
        CodedSchema(schema, over_http=True, trusted=trusted),
        persisted=persisted,
        fast=FastPath(schema, LIMIT_RULES, MAX_TOKENS, fast_executor) if fast_path else None,
        graphql_ide="graphiql",
        allow_queries_via_get=True,
        keep_alive=True,  # legacy graphql-ws "ka" messages; graphql-transport-ws clients ping us
        keep_alive_interval=15,
        max_subscriptions_per_connection=MAX_SUBSCRIPTIONS,
        allowed_origins=effective.allowed_origins,  # plus same-origin, always
        connection_init_wait_timeout=timedelta(seconds=10),
    )
    app = _App(
        graphql,
        routes=[
            Route("/", index),
            Route(GRAPHQL_PATH, graphql, methods=["GET", "POST"]),
            WebSocketRoute(GRAPHQL_PATH, graphql),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route(f"{STATIC_URL}/vendor/{{name}}", vendor_asset),
            Mount(f"{STATIC_URL}/client", StaticFiles(directory=STATIC / "client"), name="client"),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit)
    if graphql.fast is not None:
        # Added last, so it runs first (inside Starlette's server-error middleware only).
        answer = partial(graphql.answer_fast, graphql.fast)
        app.add_middleware(FastGraphQL, answer=answer, path=GRAPHQL_PATH, limit=MAX_BODY_BYTES)
    return app


class _App(Starlette):
    """The app, with websockets to /graphql handed to the GraphQL app directly.

    An open websocket keeps every ASGI layer it passed suspended: Starlette's error and
    exception middleware, BodyLimit (HTTP only), the router and the route, about 4 KB of
    coroutine frames and closures per idle subscription (bench live's census). None of them
    acts on a websocket the GraphQL app accepts; any other websocket path goes the usual way
    (the router refuses it)."""

    def __init__(self, graphql: GraphQLApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == GRAPHQL_PATH:
            scope["app"] = self  # as Starlette sets it: the context reads app.state.services
            await self._graphql(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def persisted_operations(settings: Settings) -> PersistedOperations:
    """APQ with this process's bounded store, or the trusted documents of the manifest."""
    manifest = None
    if settings.trusted_documents is not None:
        try:
            manifest = load_manifest(settings.trusted_documents)
        except ManifestError as exc:
            raise SettingsError(f"{config.PREFIX}TRUSTED_DOCUMENTS: {exc}") from None
    return PersistedOperations(
        store=DocumentStore(settings.apq_store_bytes) if settings.apq_store_bytes else None,
        manifest=manifest,
        is_valid=document_checker(schema._schema, MAX_TOKENS),
    )


def app_from_env() -> Starlette:
    """Factory for uvicorn workers: settings (with URLs) come from the environment."""
    return create_app(config.load())

"""Render once, send many: one live event's answer is executed once per subscription document.

Every subscriber of `homeFeedUpdates` used to run GraphQL execution and JSON encoding for each
event, though subscribers of one event nearly all ask the same document and get the same bytes
except for a few fields that depend on the viewer. Here, for one event and one document:

- the viewer-dependent values the document selects (`viewerHasLiked` of the event's post,
  `viewerFollows` of its author) are read for every subscriber in one batch (the event's
  shared loaders: one statement per kind, for all subscribers at once);
- subscribers are grouped by those values (at most four groups); each group's answer is
  executed once, with the viewer's `cursor` left as a marker, and encoded once to JSON text;
- each subscriber gets that text with its own cursor spliced in (a `Rendered` event), which
  the executor hands on as the event's data without executing anything (execution/run.py)
  and the transport sends inside a frame with the subscriber's operation id (`frame`).

Strawberry still starts every subscription (validation, limits, cost, rate limits) and still
wraps every event's result (extensions, errors): only the per-subscriber execution and
encoding are gone. Only documents whose whole answer is decided by those values are rendered
this way (`shape_of`): no directives, no `User.posts` (a page of posts, each with its own
viewer flags). Any other document runs per subscriber, so every subscriber receives what
executing its own document would give either way (tests/schema/test_broadcast.py compares
the two for many documents and viewers).
"""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from graphql import (
    DirectiveNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    visit,
)
from graphql.language import Visitor

from homefeed.feed.live import Kind, LiveEvent, Subscriber
from homefeed.loaders import shared_for
from homefeed.resolvers import live
from homefeed.resolvers.connections import home_scope
from homefeed.resolvers.context import Context

# Stands for the subscriber's cursor while a group's answer is executed; random per process, so
# no post text can forge it.
CURSOR_MARKER = f"\x00cursor:{secrets.token_hex(16)}\x00"
_MARKER_JSON = orjson.dumps(CURSOR_MARKER)
# Templates kept for one event: RESYNC is a single event for the life of the process.
TEMPLATES_PER_EVENT = 1000


@dataclass(frozen=True, slots=True)
class Prebuilt:
    """An event's `data`, already encoded as JSON (see `frame`)."""

    json: bytes


@dataclass(frozen=True, slots=True)
class Rendered:
    """A subscriber's answer to one event, rendered: executing it is handing it on."""

    data: Prebuilt
    errors: list[GraphQLError] | None

    def result(self) -> ExecutionResult:
        """The event's execution result, as graphql-core would have built it."""
        return ExecutionResult(data=self.data, errors=self.errors)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, eq=False)  # one per operation node: compared by identity
class Shape:
    """What rendering a document needs to know of it."""

    document: DocumentNode
    asks_liked: bool
    asks_follows: bool


class _Inspect(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.directives = False

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        self.names.add(node.name.value)

    def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
        self.directives = True


# By the operation node's identity: the parser cache hands every subscriber of one query text the
# same nodes, and graphql-core compares nodes by content (one operation text may come with
# different fragments). Entries hold their node, so an id is not reused while it is remembered.
_shapes: OrderedDict[int, tuple[OperationDefinitionNode, Shape | None]] = OrderedDict()
SHAPES_REMEMBERED = 1024


def shape_of(operation: OperationDefinitionNode, fragments: dict[str, Any]) -> Shape | None:
    """The shape of a validated subscription if its answers can be rendered once, else None."""
    known = _shapes.get(id(operation))
    if known is not None and known[0] is operation:
        _shapes.move_to_end(id(operation))
        return known[1]
    document = DocumentNode(definitions=(operation, *fragments.values()))
    seen = _Inspect()
    visit(document, seen)
    renderable = not seen.directives and "posts" not in seen.names
    shape = (
        Shape(document, "viewerHasLiked" in seen.names, "viewerFollows" in seen.names) if renderable else None
    )
    _shapes[id(operation)] = (operation, shape)
    if len(_shapes) > SHAPES_REMEMBERED:
        _shapes.popitem(last=False)
    return shape


@dataclass(frozen=True, slots=True)
class _Template:
    """One group's data as JSON, split where the cursor goes, with the run's errors."""

    pieces: list[bytes]
    errors: list[GraphQLError] | None

    def fill(self, cursor: str | None) -> Rendered:
        if len(self.pieces) == 1:
            return Rendered(Prebuilt(self.pieces[0]), self.errors)
        return Rendered(Prebuilt(orjson.dumps(cursor).join(self.pieces)), self.errors)


# The root value a group's execution starts from: the update as the subscription field yields it,
# built with the group's viewer-dependent values and the given cursor.
RootFactory = Callable[[live.Update, Context, bool, bool, str | None], object]

_templates: weakref.WeakKeyDictionary[LiveEvent, dict[tuple[object, ...], asyncio.Future[_Template]]] = (
    weakref.WeakKeyDictionary()
)


async def render(shape: Shape, schema: Any, update: live.Update, ctx: Context, root: RootFactory) -> Rendered:
    """This subscriber's answer to one event: its group's shared answer with its cursor spliced in."""
    post = update.post
    loads: list[Awaitable[bool]] = []
    if post is not None and shape.asks_liked:
        loads.append(update.loaders.viewer_liked.load(post.id))
    if post is not None and shape.asks_follows:
        loads.append(update.loaders.viewer_follows.load(post.author_id))
    # Every subscriber of the event asks in the same tick: one statement for all of them.
    values = iter(await asyncio.gather(*loads)) if loads else iter(())
    liked = next(values) if post is not None and shape.asks_liked else False
    follows = next(values) if post is not None and shape.asks_follows else False
    template = await _template(shape, schema, update, ctx, root, liked, follows)
    return template.fill(update.cursor)


async def _template(
    shape: Shape,
    schema: Any,
    update: live.Update,
    ctx: Context,
    root: RootFactory,
    liked: bool,
    follows: bool,
) -> _Template:
    """The event's answer for one group, executed by the group's first subscriber."""
    key = (shape, liked, follows)
    per_event = _templates.setdefault(update.event, {})
    future = per_event.get(key)
    if future is None:
        future = asyncio.get_running_loop().create_future()
        if len(per_event) < TEMPLATES_PER_EVENT:
            per_event[key] = future
        try:
            started = root(update, ctx, liked, follows, CURSOR_MARKER if update.cursor is not None else None)
            future.set_result(await _execute(shape, schema, started, ctx))
        except BaseException as exc:
            per_event.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: the subscribers waiting on it re-raise it
            raise
    return await asyncio.shield(future)


async def _execute(shape: Shape, schema: Any, root: object, ctx: Context) -> _Template:
    """Execute the document once for a group, with the cursor as a marker, and encode its data."""
    executor = schema.execution_context_class.build(schema._schema, shape.document, context_value=ctx)
    result = executor.build_per_event_executor(root).execute_operation(False)
    if isinstance(result, Awaitable):
        result = await result
    assert isinstance(result, ExecutionResult)
    return _Template(orjson.dumps(result.data).split(_MARKER_JSON), result.errors)


def frame(message: dict[str, Any]) -> str | None:
    """The text of a `next`/`data` frame whose data was rendered once, else None (encode as usual)."""
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return None
    data = payload.get("data")
    if not isinstance(data, Prebuilt):
        return None
    # orjson copies the prebuilt bytes in as they are: this subscriber's frame, one small dumps.
    return orjson.dumps({**message, "payload": {**payload, "data": orjson.Fragment(data.json)}}).decode()


# Sending many: a subscription started on a connection that offers a frame writer (the server's
# websocket transport, homefeed/websocket.py) has its rendered events written straight to its
# socket by the live hub, one `Together.deliver` per event for all subscribers of a document in
# this process, instead of waking its task to go through Strawberry and ASGI one by one.


class FrameWriter(Protocol):
    """Writes a whole text frame to one websocket now, or says it cannot (False, nothing sent)."""

    def write_text(self, payload: bytes) -> bool: ...


class Lot(Protocol):
    """A connection that keeps started render-once subscriptions as records (parked.py): the
    graphql-transport-ws handler."""

    def park(self, operation_id: str, parked: Any) -> bool:
        """Keep parked as the operation's whole state; False if the operation is gone."""
        ...

    async def send_message(self, message: Any) -> None:
        """Send a protocol message as the operation's stream would have."""
        ...

    async def finish(self, operation_id: str, message: dict[str, Any]) -> None:
        """End the operation: forget it, send message, then `complete`."""
        ...


@dataclass(frozen=True, slots=True)
class Outlet:
    """Where the subscription being started may have its frames written: its connection's
    writer, and its frame up to the data (the protocol's message with the operation's id)."""

    writer: FrameWriter
    head: bytes
    # A connection that keeps a render-once subscription as a record once started (parked.py),
    # and the operation's id there; None where the protocol's handler does not.
    lot: Lot | None = None
    operation_id: str = ""


# Set by the websocket handlers while they start an operation: the operation's task inherits it.
OUTLET: ContextVar[Outlet | None] = ContextVar("homefeed_outlet", default=None)


def frame_tail(extensions: dict[str, Any] | None) -> bytes:
    """What follows a frame's data: the payload's extensions as Strawberry adds them (none when
    empty), then the ends of the payload and of the message."""
    return (b',"extensions":' + orjson.dumps(extensions) if extensions else b"") + b"}}"


def transport_ws_head(operation_id: str) -> bytes:
    """A graphql-transport-ws `next` frame's opening, as Strawberry orders its keys."""
    return b'{"id":' + orjson.dumps(operation_id) + b',"type":"next","payload":{"data":'


def graphql_ws_head(operation_id: str) -> bytes:
    """A legacy graphql-ws `data` frame's opening, as Strawberry orders its keys."""
    return b'{"type":"data","id":' + orjson.dumps(operation_id) + b',"payload":{"data":'


@dataclass(frozen=True, slots=True)
class _Sink:
    """One subscriber as `Together` writes to it."""

    writer: FrameWriter
    head: bytes
    tail: bytes
    ctx: Context
    scope: str  # its cursors' list


@dataclass(frozen=True, slots=True)
class Joining:
    """A subscription joining a `Together` (what resolvers/live.py asks of it)."""

    broadcast: Together
    outlet: Outlet
    ctx: Context
    extensions: dict[str, Any] | None  # what Strawberry adds to each of its results

    def sink(self, viewer: int) -> object:
        """What the hub keeps for this subscriber, for `Together.deliver`."""
        tail = frame_tail(self.extensions)
        return _Sink(self.outlet.writer, self.outlet.head, tail, self.ctx, home_scope(viewer))


class Together:
    """The subscribers of one document shape in this process, rendered once per event.

    For an event, the values the document reads through the viewer are read for all of them
    in one statement each; each group of equal values is executed and encoded once (the same
    templates `render` uses), and each subscriber's frame is its head, the group's data with
    its cursor spliced in, and the tail, written to its socket. A subscriber whose socket cannot
    take the frame now, or whose answer has errors (which Strawberry formats), gets the event
    through its own queue and task instead, as do subscribers with events already queued (so
    its events stay in order)."""

    def __init__(self, shape: Shape, schema: Any, root: RootFactory) -> None:
        self.shape = shape
        self.schema = schema
        self.root = root

    def joining(self, outlet: Outlet, ctx: Context, extensions: dict[str, Any] | None) -> Joining:
        """One subscription of this shape joining, writing through outlet."""
        return Joining(self, outlet, ctx, extensions)

    async def deliver(self, event: LiveEvent, subscribers: list[Subscriber]) -> int:
        """Deliver event to subscribers (the hub's `Broadcast`); how many frames were written."""
        # Relationships re-read meanwhile bump a subscriber's generation: only then is whether it
        # still sees the author asked again.
        generations = [s.generation for s in subscribers]
        first = subscribers[0]
        sink = first.sink
        assert isinstance(sink, _Sink)
        ctx = sink.ctx
        services = ctx.services
        post = event.post
        liked: set[int] = set()
        follows: set[int] = set()
        if post is not None and self.shape.asks_liked:
            pairs = await services.likes.liked_pairs([(s.viewer, post.id) for s in subscribers])
            liked = {viewer for viewer, _ in pairs}
        if post is not None and self.shape.asks_follows:
            pairs = await services.relations.follow_pairs([(s.viewer, post.author_id) for s in subscribers])
            follows = {viewer for viewer, _ in pairs}
        loaders = shared_for(services, event).for_viewer(first.viewer)
        if post is not None:
            loaders.posts.prime(post.id, post)
        cursor = CURSOR_MARKER if event.kind is not Kind.RESYNC else None
        update = live.Update(event.kind, event.post_id or None, post, cursor, loaders, event, first.viewer)
        templates: dict[tuple[bool, bool], _Template] = {}
        for key in {(s.viewer in liked, s.viewer in follows) for s in subscribers}:
            templates[key] = await _template(self.shape, self.schema, update, ctx, self.root, *key)
        # From here on nothing awaits: each subscriber's queue is checked just before its write.
        # This loop runs once per subscriber per event: it keeps to local names and plain checks
        # (a live event's CPU is this loop and the socket writes, bench live's profile).
        encode = services.cursors.encode_ascii
        post_id = event.post_id
        author = event.author_id
        added = event.kind is Kind.ADDED
        # Nearly always one group (a document asking no viewer flags, or everyone alike).
        only = next(iter(templates.values())) if len(templates) == 1 else None
        sent = 0
        for sub, generation in zip(subscribers, generations, strict=True):
            if sub.gone:
                continue  # left meanwhile (its client may have said `complete`)
            if not sub.queue.empty():
                sub.enqueue(event)
                continue
            if added and sub.generation != generation and not sub.sees(author):
                continue  # hidden since the notice (a mute, a block): its REMOVED went ahead
            template = only if only is not None else templates[(sub.viewer in liked, sub.viewer in follows)]
            if template.errors:
                sub.enqueue(event)
                continue
            out: _Sink = sub.sink  # type: ignore[assignment]  # what `Joining.sink` made
            pieces = template.pieces
            if len(pieces) == 1:
                data = pieces[0]
            else:
                try:
                    data = (b'"' + encode(out.scope, post_id) + b'"').join(pieces)
                except Exception:
                    # Its own path fails the same way, and answers with the error as Strawberry words it.
                    sub.enqueue(event)
                    continue
            try:
                written = out.writer.write_text(out.head + data + out.tail)
            except Exception:
                # This connection failed under the write (dropped mid-write): the others' frames
                # still go out; its own path finds the connection gone.
                written = False
            if written:
                sent += 1
            else:
                sub.enqueue(event)
        return sent


_together: OrderedDict[int, tuple[Shape, Together]] = OrderedDict()


def together(shape: Shape, schema: Any, root: RootFactory) -> Together:
    """The process's `Together` for a shape (subscribers of one shape share one)."""
    known = _together.get(id(shape))
    if known is not None and known[0] is shape:
        return known[1]
    made = Together(shape, schema, root)
    _together[id(shape)] = (shape, made)
    if len(_together) > SHAPES_REMEMBERED:
        _together.popitem(last=False)
    return made

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
from dataclasses import dataclass
from typing import Any

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

from homefeed.feed.live import LiveEvent
from homefeed.resolvers import live
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
    template = await asyncio.shield(future)
    return template.fill(update.cursor)


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

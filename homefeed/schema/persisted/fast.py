"""Running a persisted query without Strawberry's per-request machinery.

Strawberry's `Schema.execute` builds seven extension objects, an extensions runner, a
middleware manager and several async context managers for every request, and the HTTP view
adds its request adapter and response plumbing around it. For a document that is already
known (persisted, parsed and validated once), none of that decides anything: what the
extensions do is done here directly, in the same order, with the same functions:

- parsing with the token limit, validation with the same rules (graphql's, Strawberry's and
  the depth and alias limits), once per document text;
- the cost check and the cost in `extensions` (CostLimit);
- the request's count against the rate limits (RequestLimit): RateLimited propagates, for the
  caller to answer as the view would;
- execution by graphql-core's `execute` with Strawberry's arguments (`Schema.execute`), by
  the compiled executor (execution/compiled.py): the operation's plan as generated code; plain
  scalar and enum variables coerced by their known types (execution/variables.py);
- internal errors logged, then every error coded and masked (process_errors, ErrorCodes);
- the operation's metrics (OperationMetrics);
- the response dict of Strawberry's `process_result`, encoded with orjson.

Whatever is not plainly a valid query within its budget (a syntax or validation error, a
mutation or subscription, an unknown operation name, a cost over the budget) is not answered
here (`None`): the caller hands the request to the full view, which answers it as always.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
)
from graphql.execution.middleware import MiddlewareManager
from strawberry import Schema
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import validate_document

from homefeed.resolvers.context import Context
from homefeed.schema.cost import budget_of, counted_cost
from homefeed.schema.errors import log_errors, with_code
from homefeed.schema.execution.compat import ExecutionContext
from homefeed.schema.execution.compiled import CompiledExecutionContext
from homefeed.schema.execution.run import PlannedExecutionContext
from homefeed.schema.execution.variables import KnownVariables
from homefeed.schema.metrics import LATENCY, REQUESTS, operation_label
from homefeed.schema.operation import unnamed_choice_error

# Documents kept ready, as Strawberry's parser and validation caches keep theirs.
MAX_PREPARED = 1024


@dataclass(frozen=True, slots=True)
class Prepared:
    """A parsed, validated query document, and the operation a request names in it."""

    document: DocumentNode
    operation_name: str | None
    label: str
    # Its variables' types, for coercing plain values without graphql-core's generic walk
    # (None: a variable of a list or input type; graphql-core coerces those).
    known: KnownVariables | None


class FastPath:
    """Answers valid persisted queries in the view's words, or says it will not (None)."""

    def __init__(
        self,
        schema: Schema,
        extra_rules: Sequence[type[ASTValidationRule]],
        max_tokens: int,
        executor_class: type[ExecutionContext] = CompiledExecutionContext,
    ) -> None:
        self.schema = schema
        self.rules = (*specified_rules, *extra_rules)
        self.max_tokens = max_tokens
        # Persisted documents are few and run often: worth their generated code.
        self.executor_class = executor_class
        # The planned executors build from a document's known variables (execution/variables.py).
        self._knows = issubclass(executor_class, PlannedExecutionContext)
        self._prepared: OrderedDict[tuple[str, str | None], Prepared | None] = OrderedDict()
        # Metric series by label values (operation labels are capped: metrics.MAX_NAMES).
        self._series: dict[tuple[Any, ...], Any] = {}

    def prepare(self, text: str, operation_name: str | None) -> Prepared | None:
        """The document ready to run, or None when the full view must answer it."""
        key = (text, operation_name)
        if key in self._prepared:
            self._prepared.move_to_end(key)
            return self._prepared[key]
        prepared = self._prepare(text, operation_name)
        self._prepared[key] = prepared
        if len(self._prepared) > MAX_PREPARED:
            self._prepared.popitem(last=False)
        return prepared

    def _prepare(self, text: str, operation_name: str | None) -> Prepared | None:
        try:
            document = parse(text, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        # Several operations and no name: the view answers the spec's request error.
        if unnamed_choice_error(document, operation_name) is not None:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        if validate_document(self.schema._schema, document, self.rules):
            return None
        # The metric's label: the name the request gives, else the operation's own (Strawberry's rule).
        name = (
            operation_name
            if operation_name is not None
            else (operation.name.value if operation.name else None)
        )
        known = KnownVariables.of(self.schema._schema, document, operation_name, operation)
        return Prepared(document, operation_name, operation_label(name), known)

    async def run(
        self,
        prepared: Prepared,
        variables: dict[str, Any] | None,
        extensions: dict[str, Any] | None,
        context: Context,
    ) -> bytes | None:
        """The response body, or None when the operation is over its cost budget (the view answers
        it, and counts it). RateLimited when the request is over its rate limit."""
        start = time.perf_counter()
        graphql_schema = self.schema._schema
        budget = budget_of(context)
        cost = counted_cost(graphql_schema, prepared.document, prepared.operation_name, variables)
        if cost > budget:
            return None
        await context.count_operation()
        known: dict[str, Any] = {}
        if self._knows and prepared.known is not None:
            known["known"] = prepared.known
        try:
            result = execute(
                graphql_schema,
                prepared.document,
                root_value=None,
                middleware=MiddlewareManager(),
                variable_values=variables,
                operation_name=prepared.operation_name,
                context_value=context,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
                executor_class=self.executor_class,
                operation_extensions=extensions,
                **known,
            )
            if not isinstance(result, ExecutionResult):
                result = await result
            data, errors = result.data, result.errors
        except Exception as exc:  # as Strawberry: an executor failure is an error of the answer
            data, errors = None, [GraphQLError(str(exc), original_error=exc)]
        response: dict[str, Any] = {"data": data}
        if errors:
            log_errors(errors)
            response["errors"] = [with_code(e).formatted for e in errors]
        response["extensions"] = {"cost": {"requested": cost, "budget": budget}}
        self._series_of(LATENCY, prepared.label).observe(time.perf_counter() - start)
        self._series_of(REQUESTS, prepared.label, "error" if errors else "ok").inc()
        return orjson.dumps(response)

    def _series_of(self, metric: Any, *labels: str) -> Any:
        # The labelled series, found once: `labels()` takes a lock and builds its key every call.
        # Created on first use, as `labels()` would, so /metrics lists the same series.
        key = (metric, *labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = metric.labels(*labels)
        return series

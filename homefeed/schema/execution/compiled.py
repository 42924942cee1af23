"""Compiled execution: a plan turned once into Python source, then run as straight-line code.

A plan (plan.py) still costs its run (run.py) a dispatch on the kind of every completion, a
`Path` and a call per field, and generic leaf coercion for every value. Here each object type's
selection becomes one generated function that reads its fields in order, with the completion
of each field written out for its type: a `str` of a String or ID field, an `int` of an Int
field in range and a `bool` of a Boolean field are taken as they are (what graphql-core's
coercion returns for them); anything else goes through the type's own coercion. A value of an
object type whose class is that type's own Strawberry class (not cast to another type) goes
straight to the object's fields: every check of its completion would pass. Paths are only
built where something needs them: a resolver's info, a nested object or list, an error.

What the code keeps of graphql-core's semantics is run.py's, step for step, so that errors,
their paths and locations, and null propagation come out the same: a coroutine per awaited
field or item, gathered per object and per list with graphql-core's `gather_with_cancel`,
siblings of a synchronous failure settled in the background, every error in the executor's
own `CollectedErrors`. Interface and union values are completed by graphql-core, as in a plan.

Compiled code is kept on the plan, so it lives and goes with the plan cache. Only the fast path
of persisted operations (persisted/fast.py) executes with it: those documents are known and few,
and compiling costs a few milliseconds that a one-off document would not win back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import date, datetime, time
from decimal import Decimal
from types import CoroutineType
from typing import Any
from uuid import UUID

from graphql import (
    ExecutionResult,
    GraphQLBoolean,
    GraphQLError,
    GraphQLID,
    GraphQLInt,
    GraphQLString,
    OperationType,
    Undefined,
    located_error,
)
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE

from homefeed.schema.execution import compat
from homefeed.schema.execution.compat import Path, inspect, is_iterable
from homefeed.schema.execution.plan import AbstractOf, Completion, Leaf, ListOf, ObjectOf, Plan, plans_for
from homefeed.schema.execution.run import PlannedExecutionContext, _field_path

# graphql-core's Int is 32 bits.
MIN_INT, MAX_INT = -(2**31), 2**31 - 1
# Python types whose values are never awaitable, an exception or null.
PLAIN = frozenset({str, int, float, bool, datetime, date, time, Decimal, UUID})

Compiled = Callable[["Runtime", Any], Any]


class CompiledExecutionContext(PlannedExecutionContext):
    """The planned executor, running queries by their plan's compiled code."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        if (
            self.operation.operation is not OperationType.QUERY
            or serially
            or not compat.only_plain_execution(self)
        ):
            return super().execute_operation(serially)
        plan = plans_for(self.schema).for_operation(self)
        if plan is None:  # unplannable: plan.py logged why, once per operation
            return super().execute_operation(serially)
        code = plan.compiled
        if code is None:
            code = plan.compiled = compile_plan(plan, self.schema)
        return compat.released_after(self, Runtime(self).execute(code))


class Runtime:
    """What one execution's generated code calls: errors, arguments and the awaiting helpers."""

    __slots__ = ("arguments", "errors", "ex", "is_awaitable", "resolve_info")

    def __init__(self, executor: compat.ExecutionContext) -> None:
        self.ex = executor
        self.is_awaitable = executor.is_awaitable
        self.resolve_info = compat.resolve_info_builder(executor)
        self.errors = compat.collected_errors(executor)
        self.arguments: dict[int, dict[str, Any]] = {}

    def execute(self, code: Compiled) -> ExecutionResult | Awaitable[ExecutionResult]:
        """The result; awaitable only when a resolver returned an awaitable (as graphql-core's)."""
        try:
            data = code(self, self.ex.root_value)
        except GraphQLError as error:
            self.errors.add(error, None)
            return ExecutionResult(None, self.errors.errors or None)
        if type(data) is CoroutineType:
            return self._await_data(data)
        return ExecutionResult(data, self.errors.errors or None)

    async def _await_data(self, data: Awaitable[dict[str, Any]]) -> ExecutionResult:
        try:
            completed = await data
        except GraphQLError as error:
            self.errors.add(error, None)
            return ExecutionResult(None, self.errors.errors or None)
        return ExecutionResult(completed, self.errors.errors or None)

    def error(self, raw: Exception, f: Any, non_null: bool, path: Path) -> None:
        """Record a failure at a nullable place; at a non-null one, raise it to the parent."""
        error = located_error(raw, f.nodes, path.as_list())
        if non_null:
            raise error
        self.errors.add(error, path)

    def args(self, f: Any) -> dict[str, Any]:
        """A field's coerced arguments, once per execution."""
        key = id(f)
        found = self.arguments.get(key)
        if found is None:
            found = compat.argument_values(self.ex, f.definition, f.nodes[0])
            self.arguments[key] = found
        return found

    async def await_value(
        self, f: Any, complete: Callable[..., Any], non_null: bool, info: Any, path: Path, value: Any
    ) -> Any:
        """An awaitable field value or list item, completed as soon as it settles."""
        try:
            completed = complete(self, await value, info, path)
            if type(completed) is CoroutineType:
                completed = await completed
        except Exception as raw:
            self.error(raw, f, non_null, path)
            return None
        return completed

    async def await_completed(
        self, f: Any, non_null: bool, path: Path, completed: Coroutine[Any, Any, Any]
    ) -> Any:
        """A completion still pending (an object or list with awaited parts)."""
        try:
            return await completed
        except Exception as raw:
            self.error(raw, f, non_null, path)
            return None

    def settle(self, awaitables: list[Any], rest: Any = None) -> None:
        """Let what a failure abandons settle in the background (graphql-core's rule)."""
        compat.settle_in_background(self.ex, awaitables, rest)

    def abstract(self, f: Any, type_: Any, info: Any, path: Path, value: Any) -> Any:
        """An interface or union value, completed by graphql-core (as in a plan)."""
        if info is None:
            info = self.resolve_info(f.definition, f.nodes, f.parent, _field_path(path))
        return compat.complete_abstract(self.ex, type_, f.details, info, path, value)

    def async_list(self, f: Any, type_: Any, info: Any, path: Path, value: Any) -> Any:
        """A list from an async iterable, completed by graphql-core (as in a plan)."""
        if info is None:
            info = self.resolve_info(f.definition, f.nodes, f.parent, _field_path(path))
        return compat.complete_async_list(self.ex, type_, f.details, info, path, value)


async def object_pending(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
    """An object once its pending fields settled."""
    if len(pending) == 1:
        key = pending[0]
        results[key] = await results[key]
    else:
        awaited = await compat.gather_with_cancel(*(results[key] for key in pending))
        results.update(zip(pending, awaited, strict=True))
    return results


async def list_pending(out: list[Any], pending: list[int]) -> list[Any]:
    """A list once its pending items settled."""
    if len(pending) == 1:
        index = pending[0]
        out[index] = await out[index]
    else:
        awaited = await compat.gather_with_cancel(*(out[i] for i in pending))
        for index, completed in zip(pending, awaited, strict=True):
            out[index] = completed
    return out


def compile_plan(plan: Plan, schema: Any = None) -> Compiled:
    """The plan as a Python function `(runtime, root value) -> data` (or a coroutine of it).
    Given the schema, resolver functions are called without Strawberry's wrapper where it would
    only call them (compat.direct_resolver)."""
    generator = _Generator(schema)
    root = generator.object(plan.root)
    namespace = dict(generator.constants)
    exec(compile("\n".join(generator.lines), "<compiled operation>", "exec"), namespace)
    code: Compiled = namespace[root]
    return code


# Leaf types whose values of one Python type coerce to themselves (graphql-core's serializers).
_IDENTITY: dict[Any, str] = {GraphQLString: "str", GraphQLID: "str", GraphQLBoolean: "bool"}


class _Generator:
    """Writes the source: a function per object selection, per completion, per list."""

    def __init__(self, schema: Any = None) -> None:
        self.schema = schema
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {
            "Path": Path,
            # A Path built as the tuple it is: NamedTuple's generated __new__ is a Python frame,
            # and a page builds a few Paths per post.
            "new_path": tuple.__new__,
            "CoroutineType": CoroutineType,
            "Undefined": Undefined,
            "GraphQLError": GraphQLError,
            "inspect": inspect,
            "is_iterable": is_iterable,
            "object_pending": object_pending,
            "list_pending": list_pending,
            "MIN_INT": MIN_INT,
            "MAX_INT": MAX_INT,
            "PLAIN": PLAIN,
        }
        self.count = 0
        self.objects: dict[int, str] = {}

    def constant(self, value: Any, prefix: str) -> str:
        self.count += 1
        name = f"{prefix}{self.count}"
        self.constants[name] = value
        return name

    def emit(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        self.lines.append("")

    def object_function(self, plan: ObjectOf) -> str:
        """`object`'s function for a selection, written once however many places complete it."""
        name = self.objects.get(id(plan))
        if name is None:
            name = self.objects[id(plan)] = self.object(plan)
        return name

    def exact(self, completion: Completion | None, var: str) -> str | None:
        """A test on `var` under which completing it to an object type can skip straight to the
        object's fields: its class is the type's own Strawberry class, exactly. Such a value is
        not awaitable (the class has no `__await__`), not an exception and not null, and
        Strawberry's is_type_of (an isinstance check) holds for it unless the object was cast
        to another type (strawberry.cast sets an attribute on it, tested here)."""
        if type(completion) is not ObjectOf:
            return None
        definition = (completion.type_.extensions or {}).get("strawberry-definition")
        origin = getattr(definition, "origin", None)
        if (
            not isinstance(origin, type)
            or issubclass(origin, BaseException)
            or hasattr(origin, "__await__")
            or hasattr(origin, TYPE_CAST_ATTRIBUTE)
        ):
            return None
        cls = self.constant(origin, "K")
        if completion.is_type_of is None:
            return f"type({var}) is {cls}"
        if getattr(origin, "__slots__", None) is not None:  # where a cast would be, unsure
            return None
        return f"type({var}) is {cls} and {TYPE_CAST_ATTRIBUTE!r} not in {var}.__dict__"

    def object(self, plan: ObjectOf) -> str:
        """`o(rt, src, path)`: the object's fields, a dict or a coroutine of it."""
        typename = plan.type_.name
        name = self.constant(None, "o")
        body: list[str] = []
        for f in plan.fields:
            key = repr(f.key)
            if f.completion is None:
                body.append(f"        r[{key}] = {typename!r}")
                continue
            field = self.constant(f, "F")
            complete = self.completion(f, f.completion, f.non_null)
            non_null = repr(f.non_null)
            path = f"new_path(Path, (path, {key}, {typename!r}))"
            if f.attribute is not None:
                fast = _fast_check(f.completion)
                body += [
                    "        try:",
                    f"            v = src.{f.attribute}",
                ]
                if fast is not None:
                    body += [f"            if {fast}:", f"                r[{key}] = v", "            else:"]
                    indent = "                "
                elif type(f.completion) is ObjectOf and (exact := self.exact(f.completion, "v")) is not None:
                    # The value is the type's own class: the completion's checks (awaitable, an
                    # error, null, is_type_of) all pass; only the object's fields are left.
                    obj = self.object_function(f.completion)
                    body += [
                        f"            if {exact}:",
                        f"                p = {path}",
                        f"                v = {obj}(rt, v, p)",
                        "                if type(v) is CoroutineType:",
                        f"                    v = rt.await_completed({field}, {non_null}, p, v)",
                        f"                    pending = [{key}] if pending is None else [*pending, {key}]",
                        f"                r[{key}] = v",
                        "            else:",
                    ]
                    indent = "                "
                elif type(f.completion) is Leaf:
                    # A value of a plain Python type is neither awaitable, an error nor null: all
                    # the completion would do is coerce it (a DateTime's datetime, for one).
                    leaf = self.constant(f.completion.type_, "L")
                    body += [
                        "            if type(v) in PLAIN:",
                        f"                c = {leaf}.coerce_output_value(v)",
                        "                if c is Undefined or c is None:",
                        f"                    c = {complete}(rt, v, None, None)",
                        f"                r[{key}] = c",
                        "            else:",
                    ]
                    indent = "                "
                else:
                    indent = "            "
                body += [
                    f"{indent}p = {path}",
                    f"{indent}if is_awaitable(v):",
                    f"{indent}    r[{key}] = rt.await_value({field}, {complete}, {non_null}, None, p, v)",
                    f"{indent}    pending = [{key}] if pending is None else [*pending, {key}]",
                    f"{indent}else:",
                    f"{indent}    v = {complete}(rt, v, None, p)",
                    f"{indent}    if type(v) is CoroutineType:",
                    f"{indent}        v = rt.await_completed({field}, {non_null}, p, v)",
                    f"{indent}        pending = [{key}] if pending is None else [*pending, {key}]",
                    f"{indent}    r[{key}] = v",
                    "        except Exception as raw:",
                    f"            rt.error(raw, {field}, {non_null}, {path})",
                    f"            r[{key}] = None",
                ]
                continue
            definition = self.constant(f.definition, "D")
            direct = None if self.schema is None else compat.direct_resolver(f.definition, self.schema)
            resolve = self.constant(f.definition.resolve if direct is None else direct[0], "R")
            nodes = self.constant(f.nodes, "N")
            parent = self.constant(f.parent, "T")
            call = f"{resolve}(src, info, **rt.args({field}))" if f.has_arguments else f"{resolve}(src, info)"
            # The resolve info is built only for a resolver that reads it: the completions below
            # take None (as for an attribute) and build one where they need it.
            needs_info = direct is None or direct[1]
            info = f"rt.resolve_info({definition}, {nodes}, {parent}, p)" if needs_info else "None"
            body += [
                f"        p = {path}",
                "        try:",
                f"            info = {info}",
                f"            v = {call}",
                "            if is_awaitable(v):",
                f"                r[{key}] = rt.await_value({field}, {complete}, {non_null}, info, p, v)",
                f"                pending = [{key}] if pending is None else [*pending, {key}]",
                "            else:",
                f"                v = {complete}(rt, v, info, p)",
                "                if type(v) is CoroutineType:",
                f"                    v = rt.await_completed({field}, {non_null}, p, v)",
                f"                    pending = [{key}] if pending is None else [*pending, {key}]",
                f"                r[{key}] = v",
                "        except Exception as raw:",
                f"            rt.error(raw, {field}, {non_null}, p)",
                f"            r[{key}] = None",
            ]
        self.emit(
            [
                f"def {name}(rt, src, path=None):",
                "    r = {}",
                "    pending = None",
                "    is_awaitable = rt.is_awaitable",
                "    try:",
                *(body or ["        pass"]),
                "    except Exception:",
                "        if pending is not None:",
                "            rt.settle([r[k] for k in pending])",
                "        raise",
                "    if pending is None:",
                "        return r",
                "    return object_pending(r, pending)",
            ]
        )
        return name

    def completion(self, f: Any, completion: Completion, non_null: bool) -> str:
        """`c(rt, value, info, path)`: a resolved value completed to its type (run._complete)."""
        name = self.constant(None, "c")
        field = self.constant(f, "F")
        head = [
            f"def {name}(rt, value, info, path):",
            "    if isinstance(value, Exception):",
            "        raise value",
            "    if value is None or value is Undefined:",
        ]
        if non_null:
            message = f"Cannot return null for non-nullable field {f.parent.name}.{f.name}."
            head.append(f"        raise TypeError({message!r})")
        else:
            head.append("        return None")
        if type(completion) is Leaf:
            leaf = self.constant(completion.type_, "L")
            fast = _fast_check(completion, "value")
            body = [f"    if {fast}:", "        return value"] if fast else []
            body += [
                f"    coerced = {leaf}.coerce_output_value(value)",
                "    if coerced is Undefined or coerced is None:",
                "        raise TypeError(",
                f"            f'Expected `{{inspect({leaf})}}.coerce_output_value({{inspect(value)}})`'",
                "            f' to return non-nullable value, returned: {inspect(coerced)}'",
                "        )",
                "    return coerced",
            ]
        elif type(completion) is ObjectOf:
            obj = self.object_function(completion)
            exact = self.exact(completion, "value")
            body = []
            if exact is not None:
                # Before the generic checks: every one of them passes for such a value.
                head.insert(1, f"    if {exact}:")
                head.insert(2, f"        return {obj}(rt, value, path)")
            if completion.is_type_of is not None:
                check = self.constant(completion.is_type_of, "I")
                message = f"Expected value of type '{completion.type_.name}' but got: "
                body += [
                    f"    if not {check}(value, info):",
                    f"        raise GraphQLError({message!r} + inspect(value) + '.', {field}.nodes)",
                ]
            body.append(f"    return {obj}(rt, value, path)")
        elif type(completion) is AbstractOf:
            type_ = self.constant(completion.type_, "A")
            body = [f"    return rt.abstract({field}, {type_}, info, path, value)"]
        else:
            assert isinstance(completion, ListOf)
            body = [f"    return {self.list(f, completion)}(rt, value, info, path)"]
        self.emit([*head, *body])
        return name

    def list(self, f: Any, completion: ListOf) -> str:
        """`l(rt, value, info, path)`: a list's items completed (run._list)."""
        name = self.constant(None, "l")
        field = self.constant(f, "F")
        type_ = self.constant(completion.type_, "A")
        item = self.completion(f, completion.item, completion.item_non_null)
        non_null = repr(completion.item_non_null)
        exact = self.exact(completion.item, "item")
        # An item of the object type's own class is not awaitable (see `exact`).
        awaited = "is_awaitable(item)" if exact is None else f"not ({exact}) and is_awaitable(item)"
        message = f"Expected Iterable, but did not find one for field '{f.parent.name}.{f.name}'."
        self.emit(
            [
                f"def {name}(rt, value, info, path):",
                "    if type(value) is not list and rt.ex.is_async_iterable(value):",
                f"        return rt.async_list({field}, {type_}, info, path, value)",
                "    if not is_iterable(value):",
                f"        raise GraphQLError({message!r})",
                "    out = []",
                "    pending = None",
                "    is_awaitable = rt.is_awaitable",
                "    items = iter(value)",
                "    try:",
                "        for index, item in enumerate(items):",
                "            p = new_path(Path, (path, index, None))",
                f"            if {awaited}:",
                f"                out.append(rt.await_value({field}, {item}, {non_null}, info, p, item))",
                "                pending = [index] if pending is None else [*pending, index]",
                "                continue",
                "            try:",
                f"                v = {item}(rt, item, info, p)",
                "                if type(v) is CoroutineType:",
                f"                    out.append(rt.await_completed({field}, {non_null}, p, v))",
                "                    pending = [index] if pending is None else [*pending, index]",
                "                    continue",
                "                out.append(v)",
                "            except Exception as raw:",
                f"                rt.error(raw, {field}, {non_null}, p)",
                "                out.append(None)",
                "    except Exception:",
                "        rt.settle([out[i] for i in pending or ()], items)",
                "        raise",
                "    if pending is None:",
                "        return out",
                "    return list_pending(out, pending)",
            ]
        )
        return name


def _fast_check(completion: Completion, var: str = "v") -> str | None:
    """A test on `var` under which the leaf's coercion returns it unchanged, if there is one."""
    if type(completion) is not Leaf:
        return None
    python = _IDENTITY.get(completion.type_)
    if python is not None:
        return f"type({var}) is {python}"
    if completion.type_ is GraphQLInt:
        return f"type({var}) is int and MIN_INT <= {var} <= MAX_INT"
    return None

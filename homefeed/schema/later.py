"""Field values loaded only if a query asks for them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class Later(Generic[T]):
    """A field value loaded only if a query asks for it: an awaitable that starts its load when awaited.

    Fields known from the page's read (a home-feed post's author, the viewer's flags) are plain
    attributes, the cheapest fields to execute: no resolver, no `Info`, no argument parsing, on
    every post of every page. Where the read did not know them, the attribute holds a Later;
    graphql-core awaits it like any resolver's result, so DataLoader batching across a page's
    posts is kept.
    """

    __slots__ = ("_load",)

    def __init__(self, load: Callable[[], Awaitable[T]]) -> None:
        self._load = load

    def __await__(self) -> Generator[Any, None, T]:
        return self._load().__await__()


def later(load: Callable[[], Awaitable[T]]) -> T:
    """A Later standing where the field's value goes (typed as the value it resolves to)."""
    return cast(T, Later(load))

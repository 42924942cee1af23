"""Where seeding reports its phases: a protocol, a silent reporter, a rich progress bar, a phase clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class SeedProgress(Protocol):
    """Where `seed` reports its phases; methods may be called from a worker thread."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing (tests, scripts)."""

    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass


class RichProgress:
    """One rich progress bar per phase, kept on screen when done. Use as a context manager."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def start(self, phase: str, total: int) -> None:
        self.finish()
        self._task = self._progress.add_task(phase, total=max(total, 1))

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)

    def finish(self) -> None:
        if self._task is not None:
            total = self._progress.tasks[-1].total
            self._progress.update(self._task, completed=total)
            self._task = None


@dataclass(frozen=True, slots=True)
class PhaseTime:
    phase: str
    seconds: float


class Clock:
    """Times phases for the report and brackets them on the progress display."""

    def __init__(self, progress: SeedProgress) -> None:
        self.progress = progress
        self.phases: list[PhaseTime] = []

    @contextmanager
    def phase(self, name: str, total: int) -> Iterator[None]:
        self.progress.start(name, total)
        began = time.perf_counter()
        try:
            yield
        finally:
            self.progress.finish()
        self.phases.append(PhaseTime(name, time.perf_counter() - began))

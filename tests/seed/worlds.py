"""What the seeding tests share: pinned parameters."""

from __future__ import annotations

from homefeed.seed.generate import SeedParams

NOW_MS = 1_750_000_000_000  # pinned so two generations are comparable to the millisecond
DAY_MS = 86_400_000


def params(users: int = 300, seed_: int = 7, **more: float | bool) -> SeedParams:
    return SeedParams(users=users, seed=seed_, now_ms=NOW_MS, **more)  # type: ignore[arg-type]

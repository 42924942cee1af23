"""Synthetic worlds: a power-law social graph generated with numpy, bulk-loaded, with its timelines.

generate.py (pure numpy) -> load.py (PostgreSQL) -> timelines.py (Redis, through Feeds),
orchestrated by run.py, reporting through progress.py.
"""

from __future__ import annotations

from homefeed.seed.errors import SeedError
from homefeed.seed.generate import SeedParams
from homefeed.seed.progress import RichProgress
from homefeed.seed.run import seed_from_settings

__all__ = ["RichProgress", "SeedError", "SeedParams", "seed_from_settings"]

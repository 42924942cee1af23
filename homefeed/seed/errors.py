"""The one error seeding raises for a caller to show."""

from __future__ import annotations


class SeedError(Exception):
    """Seeding cannot proceed; the message says why and what to do."""

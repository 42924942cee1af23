"""The composition root: the `homefeed` command, the only package that may import every other."""

from homefeed.cli.main import main

__all__ = ["main"]

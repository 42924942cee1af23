"""`homefeed rank train` from the command line: a clear refusal without data, a report with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from homefeed.cli.main import parser
from homefeed.cli.rank import _train
from homefeed.feed.config import Settings


def test_the_command_parses() -> None:
    args = parser().parse_args(["rank", "train", "--days", "3"])
    assert (args.action, args.days, args.limit) == ("train", 3, 2_000_000)


async def test_without_impressions_it_refuses_and_writes_nothing(
    settings_: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_.with_(rank_model=tmp_path / "m.json")
    assert await _train(settings, 14, 1000) == 1
    assert "need 50 or more" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()

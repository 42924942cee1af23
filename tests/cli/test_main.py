"""The `homefeed` command line: every command parses with its flags; the benches' names are current."""

from __future__ import annotations

import pytest

from homefeed.cli.main import parser


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--host", "0.0.0.0", "--port", "8123", "--workers", "2", "--log-level", "warning"],
        ["worker", "--processes", "3"],
        ["migrate"],
        ["seed", "--users", "10", "--seed", "1", "--posts-per-user", "2", "--reset"],
        ["bench", "fanout", "--posts", "5", "--seconds", "1", "--fanout-keys", "10", "--min-users", "1"],
        ["bench", "live", "--subscribers", "2", "--legacy-share", "0.5", "--no-compression"],
        ["bench", "read", "--connections", "4", "--variants", "hybrid,baseline", "--json", "x.json"],
    ],
)
def test_every_command_parses_to_its_runner(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert callable(args.run)


def test_the_read_bench_compares_against_the_baseline_by_default() -> None:
    default = parser().parse_args(["bench", "read"]).variants.split(",")
    assert default[:3] == ["hybrid", "pull", "baseline"] and "ranked" in default


def test_serve_runs_the_app_unless_a_bench_names_its_own_factory(capsys: pytest.CaptureFixture[str]) -> None:
    assert parser().parse_args(["serve"]).app == "homefeed.app:app_from_env"
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--help"])
    assert "--app" not in capsys.readouterr().out  # not for users

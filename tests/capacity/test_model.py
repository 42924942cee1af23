"""The capacity model's arithmetic: proportional where it must be, monotone, and true to the seeds' sizing."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.capacity.measured import MissingMeasurement, measured
from homefeed.capacity.model import GB, Assumptions, Measured, Plan, plan
from homefeed.cli.main import main

MEASURED = Measured(
    api_cpu_ms_per_read=1.5,
    pg_cpu_ms_per_read=0.4,
    redis_cpu_ms_per_read=0.05,
    fanout_writes_per_worker_s=500_000,
    bytes_per_entry=13.7,
    mean_followers=220,
)
SERVERS = ("redis_masters", "pg_primaries", "pg_replicas")
CORES = ("api_cores", "worker_cores", "pg_read_cores", "pg_write_cores")

dau = st.integers(1_000, 2_000_000_000)


def at(users: int, **changes: object) -> Plan:
    return plan(dataclasses.replace(Assumptions(dau=users), **changes), MEASURED)  # type: ignore[arg-type]


def test_the_seeds_sizing_800_gb_of_timelines_for_50m_users() -> None:
    # The seeds' figure: 50M users x 800 entries at the 20-byte cap of invariant 12.
    p = plan(
        Assumptions(dau=50_000_000, redis_key_overhead_bytes=0),
        dataclasses.replace(MEASURED, bytes_per_entry=20),
    )
    assert p.redis_bytes / GB == pytest.approx(800)


def test_the_issues_sizing_1_1_tb_for_100m_users_at_13_7_bytes() -> None:
    p = plan(Assumptions(dau=100_000_000, redis_key_overhead_bytes=0), MEASURED)
    assert p.redis_bytes / 1e12 == pytest.approx(1.096)


def test_the_default_traffic_falls_in_the_seeds_ranges_at_100m() -> None:
    # The seeds: reads at 70-300k/s, posts at 7-15k/s for 100M daily users.
    p = at(100_000_000)
    assert 70_000 <= p.reads_per_s_peak <= 300_000
    assert 7_000 <= p.posts_per_s_peak <= 15_000


@given(dau, dau)
def test_everything_grows_with_daily_users(small: int, large: int) -> None:
    small, large = sorted((small, large))
    a, b = at(small), at(large)
    for name in (
        *SERVERS,
        *CORES,
        "reads_per_s_peak",
        "posts_per_s_peak",
        "fanout_writes_per_s_peak",
        "redis_bytes",
    ):
        assert getattr(a, name) <= getattr(b, name), name


@given(dau, st.integers(2, 10))
def test_rates_memory_and_cores_are_proportional_to_daily_users(users: int, factor: int) -> None:
    a, b = at(users), at(users * factor)
    for name in (*CORES, "reads_per_s_peak", "posts_per_s_peak", "fanout_writes_per_s_peak", "redis_bytes"):
        assert getattr(b, name) == pytest.approx(getattr(a, name) * factor), name
    # Whole servers round up: never fewer than the proportional need, never one more per factor.
    for name in SERVERS:
        assert getattr(b, name) <= getattr(a, name) * factor


@given(dau, st.floats(0.0, 0.8), st.floats(0.0, 0.8))
def test_more_headroom_never_means_fewer_servers(users: int, h1: float, h2: float) -> None:
    low, high = sorted((h1, h2))
    a = at(users, redis_headroom=low, cpu_headroom=low)
    b = at(users, redis_headroom=high, cpu_headroom=high)
    for name in (*SERVERS, "api_cores", "worker_cores"):
        assert getattr(a, name) <= getattr(b, name), name


@given(dau)
def test_servers_cover_their_load_at_the_stated_headroom(users: int) -> None:
    a = Assumptions(dau=users)
    p = plan(a, MEASURED)
    assert p.redis_masters * a.redis_gb_per_master * GB * (1 - a.redis_headroom) >= p.redis_bytes
    usable = a.pg_cores_per_server * (1 - a.cpu_headroom)
    assert p.pg_replicas * usable >= p.pg_read_cores
    assert p.pg_primaries * usable >= p.pg_write_cores
    assert p.worker_cores * (1 - a.cpu_headroom) * MEASURED.fanout_writes_per_worker_s == pytest.approx(
        p.fanout_writes_per_s_peak
    )


def test_pulled_authors_and_inactive_followers_cut_fan_out() -> None:
    every = at(100_000_000, pushed_edge_share=1.0, active_follower_share=1.0)
    fewer = at(100_000_000, pushed_edge_share=0.5, active_follower_share=0.5)
    assert fewer.fanout_writes_per_s_peak == pytest.approx(every.fanout_writes_per_s_peak / 4)
    assert math.isclose(every.fanout_writes_per_post, MEASURED.mean_followers)


# ---- reading the benches' JSON, and the command ------------------------------------------------


def bench_files(tmp: Path) -> tuple[Path, Path]:
    read, fanout = tmp / "read.json", tmp / "fanout.json"
    read.write_text(
        json.dumps(
            {
                "hybrid": {
                    "server_cpu_ms_per_request": 1.5,
                    "postgres_cpu_ms_per_request": 0.4,
                    "redis_cpu_ms_per_request": 0.05,
                },
                "run": {},
            }
        )
    )
    fanout.write_text(
        json.dumps(
            {
                "writes_per_s": 500_000.0,
                "bytes_per_entry": 13.7,
                "memory_cycle_rounds": 401,
                "graph_follows": 22_000,
                "graph_users": 100,
            }
        )
    )
    return read, fanout


def test_measured_figures_come_from_the_json_unless_a_flag_gives_them(tmp_path: Path) -> None:
    read, fanout = bench_files(tmp_path)
    got, sources = measured(read, fanout, {"bytes_per_entry": 20.0})
    assert got == dataclasses.replace(MEASURED, bytes_per_entry=20.0)
    origins = {s.figure: s.origin for s in sources}
    assert origins["bytes_per_entry"] == "flag"
    assert origins["api_cpu_ms_per_read"] == f"{read}: hybrid.server_cpu_ms_per_request"


def test_a_missing_bench_says_which_command_writes_it(tmp_path: Path) -> None:
    with pytest.raises(MissingMeasurement, match="homefeed bench read --json"):
        measured(tmp_path / "none.json", tmp_path / "none2.json", {})
    read, fanout = bench_files(tmp_path)
    fanout.write_text(json.dumps({"writes_per_s": 1.0}))
    with pytest.raises(MissingMeasurement, match="no bytes_per_entry"):
        measured(read, fanout, {})


def test_a_memory_figure_from_before_the_steady_state_is_refused(tmp_path: Path) -> None:
    # Such a bench measured timelines as written whole, half what appends grow them to.
    read, fanout = bench_files(tmp_path)
    doc = json.loads(fanout.read_text())
    del doc["memory_cycle_rounds"]
    fanout.write_text(json.dumps(doc))
    with pytest.raises(MissingMeasurement, match="before the steady-state figure"):
        measured(read, fanout, {})
    got, _ = measured(read, fanout, {"bytes_per_entry": 14.0})
    assert got.bytes_per_entry == 14.0


def test_the_command_prints_every_assumption_and_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    read, fanout = bench_files(tmp_path)
    argv = ["capacity", "--dau", "100000000", "--read-json", str(read), "--fanout-json", str(fanout)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(Assumptions):
        assert "--" + f.name.replace("_", "-") in out
    expected = at(100_000_000)
    assert f"| Redis masters (memory / CPU; at 50% headroom) | {expected.redis_masters} " in out
    assert main([*argv[:-2], "--fanout-json", str(tmp_path / "absent.json")]) == 1

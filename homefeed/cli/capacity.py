"""`homefeed capacity --dau N [assumptions…]`: the capacity model over the benches' measured figures."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from homefeed.capacity.measured import (
    DEFAULT_FANOUT_JSON,
    DEFAULT_READ_JSON,
    MissingMeasurement,
    Source,
    measured,
)
from homefeed.capacity.model import GB, Assumptions, Plan, plan
from homefeed.feed.config import Settings

_HELP = {
    "dau": "daily active users",
    "reads_per_user_day": "home-feed page reads per daily user per day",
    "posts_per_user_day": "posts per daily user per day",
    "peak_to_average": "peak traffic over the daily average",
    "timeline_users_per_dau": "users holding a Redis timeline (seen within ACTIVE_DAYS) per daily user",
    "active_follower_share": "share of followers seen within ACTIVE_DAYS (fan-out writes only to them)",
    "pushed_edge_share": "share of follows whose author is below the celebrity threshold (fanned out)",
    "timeline_size": "entries per timeline (HOMEFEED_TIMELINE_SIZE)",
    "redis_key_overhead_bytes": "Redis bytes per timeline key besides its entries",
    "redis_gb_per_master": "memory of one Redis master, GB",
    "redis_headroom": "share of each Redis master's memory and CPU kept free",
    "cpu_headroom": "share of API, worker and PostgreSQL cores kept free",
    "pg_cores_per_server": "cores of one PostgreSQL server",
    "pg_cpu_ms_per_post": "PostgreSQL CPU per post, ms (assumed, not measured)",
    "api_cpu_ms_per_post": "API CPU per createPost, ms (assumed, not measured)",
}
_MEASURED = {
    "api_cpu_ms_per_read": "API CPU per read, ms (default: read JSON hybrid.server_cpu_ms_per_request)",
    "pg_cpu_ms_per_read": "PostgreSQL CPU per read, ms (default: read JSON hybrid.postgres_cpu_ms_…)",
    "redis_cpu_ms_per_read": "Redis CPU per read, ms (default: read JSON hybrid.redis_cpu_ms_per_request)",
    "fanout_writes_per_worker_s": "timeline writes/s of one worker (default: fanout JSON writes_per_s)",
    "bytes_per_entry": "Redis bytes per timeline entry (default: fanout JSON bytes_per_entry)",
    "mean_followers": "follows per user (default: fanout JSON graph_follows / graph_users)",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cap = commands.add_parser(
        "capacity", help="servers for N daily users, from the benches' JSON and stated assumptions"
    )
    defaults = Assumptions()
    for f in fields(Assumptions):
        default = getattr(defaults, f.name)
        cap.add_argument(
            _flag(f.name), type=type(default), default=default, help=f"{_HELP[f.name]} (default {default:,})"
        )
    cap.add_argument(
        "--read-json",
        type=Path,
        default=DEFAULT_READ_JSON,
        help=f"bench read's JSON (default {DEFAULT_READ_JSON})",
    )
    cap.add_argument(
        "--fanout-json",
        type=Path,
        default=DEFAULT_FANOUT_JSON,
        help=f"bench fanout's JSON (default {DEFAULT_FANOUT_JSON})",
    )
    for name, text in _MEASURED.items():
        cap.add_argument(_flag(name), type=float, default=None, help=text)
    cap.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Print the assumptions, the measured inputs with their sources, and the plan."""
    assumptions = Assumptions(**{f.name: getattr(args, f.name) for f in fields(Assumptions)})
    overrides = {name: getattr(args, name) for name in _MEASURED}
    try:
        inputs, sources = measured(args.read_json, args.fanout_json, overrides)
    except MissingMeasurement as exc:
        print(f"homefeed capacity: {exc}", file=sys.stderr)
        return 1
    for line in report(assumptions, sources, plan(assumptions, inputs)):
        print(line)
    return 0


def report(a: Assumptions, sources: list[Source], p: Plan) -> list[str]:
    """The inputs and the plan as Markdown tables."""
    defaults = Assumptions()
    out = ["Assumptions", "", "| Flag | Value | Default |", "|---|---|---|"]
    for f in fields(Assumptions):
        out.append(f"| `{_flag(f.name)}` | {getattr(a, f.name):,} | {getattr(defaults, f.name):,} |")
    out += ["", "Measured", "", "| Figure | Value | From |", "|---|---|---|"]
    out += [f"| {s.figure} | {s.value:,.4g} | {s.origin} |" for s in sources]
    out += [
        "",
        f"Plan for {a.dau:,} daily users (peak = {a.peak_to_average}x average)",
        "",
        "| Quantity | Value |",
        "|---|---|",
        f"| Home-feed reads/s, average / peak | {p.reads_per_s_avg:,.0f} / {p.reads_per_s_peak:,.0f} |",
        f"| Posts/s, average / peak | {p.posts_per_s_avg:,.0f} / {p.posts_per_s_peak:,.0f} |",
        f"| Fan-out timeline writes per post | {p.fanout_writes_per_post:,.1f} |",
        f"| Fan-out timeline writes/s, peak | {p.fanout_writes_per_s_peak:,.0f} |",
        f"| Users holding a timeline | {p.timeline_users:,.0f} |",
        f"| Redis memory for timelines | {p.redis_bytes / GB:,.0f} GB |",
        f"| Redis masters (memory / CPU; at {a.redis_headroom:.0%} headroom) | {p.redis_masters}"
        f" ({p.redis_masters_for_memory} / {p.redis_masters_for_cpu}) |",
        f"| API cores (at {a.cpu_headroom:.0%} headroom) | {p.api_cores:,.0f} |",
        f"| Fan-out worker cores | {p.worker_cores:,.0f} |",
        f"| PostgreSQL cores: reads / writes | {p.pg_read_cores:,.0f} / {p.pg_write_cores:,.0f} |",
        f"| PostgreSQL primaries / read replicas ({a.pg_cores_per_server} cores each) | {p.pg_primaries}"
        f" / {p.pg_replicas} |",
    ]
    return out

"""`homefeed bench fanout | live | read | rank | chaos`: the benchmarks' arguments, and running them.

The benchmarks load only for these commands (numpy, matplotlib, the worker room).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from homefeed.cli.servers import migrated_servers
from homefeed.feed.config import Settings

if TYPE_CHECKING:
    from homefeed.bench.celebrities import CelebrityOptions


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench", help="benchmarks against the seeded graph (run `homefeed seed` first)"
    )
    benches = bench.add_subparsers(dest="bench", required=True)
    bf = benches.add_parser("fanout", help="fan-out rate, createPost latency, cold rebuild, lag, memory")
    bf.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    bf.add_argument("--posts", type=int, default=40, help="samples for latency and lag figures (default 40)")
    bf.add_argument(
        "--seconds", type=float, default=6.0, help="time budget per throughput figure (default 6)"
    )
    bf.add_argument(
        "--fanout-keys", type=int, default=120_000, help="timeline writes per fan-out round (default 120000)"
    )
    bf.add_argument("--min-users", type=int, default=50_000, help="refuse smaller graphs (default 50000)")
    _celebrity_arguments(bf)
    bf.add_argument(
        "--redis-cluster",
        action="store_true",
        help="instead: writes/s on a local 3-master Valkey cluster beside the configured Redis, same run",
    )
    bf.set_defaults(run=run_fanout)
    bk = benches.add_parser(
        "rank", help="RANKED vs LATEST vs the heuristic: AUC, NDCG@20, diversity, slots, serving cost"
    )
    bk.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    bk.add_argument("--viewers", type=int, default=500, help="held-out viewers evaluated (default 500)")
    bk.add_argument("--seed", type=int, default=0, help="the seed the world was generated with (default 0)")
    bk.add_argument("--min-users", type=int, default=50_000, help="refuse smaller graphs (default 50000)")
    bk.set_defaults(run=run_rank)
    bl = benches.add_parser(
        "live", help="live-update delivery lag and memory with 1,000 websocket subscribers"
    )
    bl.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    bl.add_argument("--subscribers", type=int, default=1000, help="concurrent subscribers (default 1000)")
    bl.add_argument(
        "--posts", type=int, default=30, help="posts, alternately ordinary and celebrity (default 30)"
    )
    bl.add_argument(
        "--legacy-share", type=float, default=0.1, help="share of subscribers on graphql-ws (default 0.1)"
    )
    bl.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="the server's celebrity threshold (default: the top count)",
    )
    bl.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    bl.add_argument(
        "--no-compression", action="store_true", help="subscribers do not offer permessage-deflate"
    )
    bl.add_argument("--min-users", type=int, default=1000, help="refuse smaller graphs (default 1000)")
    bl.add_argument(
        "--per-subscriber",
        action="store_true",
        help="subscribe with a document the server executes per subscriber (render-once's baseline)",
    )
    bl.add_argument(
        "--worker-apart",
        action="store_true",
        help="run fan-out in a `homefeed worker` process of its own, so server CPU is the API's alone",
    )
    bl.set_defaults(run=run_live)
    bh = benches.add_parser(
        "live-heap", help="where an idle subscription's memory goes (tracemalloc, API in this process)"
    )
    bh.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    bh.add_argument("--subscribers", type=int, default=500, help="idle subscribers (default 500)")
    bh.add_argument(
        "--by", choices=("filename", "lineno"), default="filename", help="group by (default file)"
    )
    bh.set_defaults(run=run_live_heap)
    br = benches.add_parser(
        "read", help="homeFeed reads at 32 connections: hybrid, pull, baseline; by text and by APQ hash"
    )
    br.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    br.add_argument("--markdown", metavar="PATH", default=None, help="table (default: beside the JSON)")
    br.add_argument("--chart", metavar="PATH", default=None, help="PNG chart (default: beside the JSON)")
    br.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    br.add_argument("--seconds", type=float, default=20.0, help="measured seconds per variant (default 20)")
    br.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per variant (default 5)")
    br.add_argument(
        "--rounds", type=int, default=4, help="slices the variants are measured in, in turn (default 4)"
    )
    br.add_argument("--users", type=int, default=2000, help="active users sampled (default 2000)")
    br.add_argument("--workers", type=int, default=2, help="API processes (default 2)")
    br.add_argument(
        "--variants",
        default="hybrid,pull,baseline,persisted,baseline-persisted,ranked,persisted-planned",
        help="which, in order (default all seven; the persisted ones send the feed query as an APQ"
        " hash, ranked asks for order: RANKED, persisted-planned runs the fast path on the planned"
        " executor instead of the compiled one)",
    )
    br.add_argument("--min-users", type=int, default=50_000, help="refuse smaller graphs (default 50000)")
    br.add_argument(
        "--replica",
        action="store_true",
        help="also serve hybrid and pull with HOMEFEED_DATABASE_REPLICA_URLS (as hybrid-replica,"
        " pull-replica; the others run without), reporting both sides and the replicas' replay lag",
    )
    _celebrity_arguments(br)
    br.set_defaults(run=run_read)
    bc = benches.add_parser(
        "chaos", help="mixed traffic while workers, API processes and Valkey are killed; then nothing lost?"
    )
    bc.add_argument("--minutes", type=float, default=10.0, help="minutes under faults (default 10)")
    bc.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    bc.add_argument("--cast", type=int, default=1000, help="users who act (default 1000)")
    bc.add_argument("--subscribers", type=int, default=200, help="live subscribers (default 200)")
    bc.add_argument("--apis", type=int, default=2, help="API processes (default 2)")
    bc.add_argument("--workers", type=int, default=2, help="fan-out worker processes (default 2)")
    bc.add_argument("--rate", type=float, default=15.0, help="API calls per second (default 15)")
    bc.add_argument(
        "--fault-every", type=float, default=12.0, help="mean seconds between faults (default 12)"
    )
    bc.add_argument("--threshold", type=int, default=None, help="celebrity threshold (default: 3rd largest)")
    bc.add_argument(
        "--configured-redis",
        action="store_true",
        help="use HOMEFEED_REDIS_URL instead of a Valkey of the run's own (Valkey faults are then skipped)",
    )
    bc.add_argument("--min-users", type=int, default=1000, help="refuse smaller graphs (default 1000)")
    bc.set_defaults(run=run_chaos)


def _celebrity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--celebrity-threshold",
        type=int,
        default=None,
        help="pull every author with at least this many followers (default: by --celebrity-top)",
    )
    parser.add_argument(
        "--celebrity-top",
        type=float,
        default=0.0001,
        help="pull this share of the most-followed accounts, more if under 30%% of viewers follow"
        " one (default 0.0001: the top 0.01%%)",
    )


def _celebrities(args: argparse.Namespace) -> CelebrityOptions:
    from homefeed.bench.celebrities import CelebrityOptions

    return CelebrityOptions(threshold=args.celebrity_threshold, top_share=args.celebrity_top)


def run_fanout(settings: Settings, args: argparse.Namespace) -> int:
    from homefeed.bench import writes

    options = writes.FanoutOptions(
        posts=args.posts,
        seconds=args.seconds,
        fanout_keys=args.fanout_keys,
        min_users=args.min_users,
        json_path=Path(args.json) if args.json else None,
        celebrities=_celebrities(args),
    )
    if args.redis_cluster:
        from homefeed.bench.writes import cluster

        compared = _bench(
            "fanout --redis-cluster",
            settings,
            lambda ready: cluster.run(ready, options, log=_say),
            options.json_path,
        )
        return 1 if compared is None else 0
    report = _bench("fanout", settings, lambda ready: writes.run(ready, options, log=_say), options.json_path)
    return 1 if report is None else 0


def run_live(settings: Settings, args: argparse.Namespace) -> int:
    from homefeed.bench import live

    options = live.LiveOptions(
        subscribers=args.subscribers,
        posts=args.posts,
        legacy_share=args.legacy_share,
        threshold=args.threshold,
        workers=args.workers,
        compression=not args.no_compression,
        per_subscriber=args.per_subscriber,
        worker_apart=args.worker_apart,
        min_users=args.min_users,
        json_path=Path(args.json) if args.json else None,
    )
    report = _bench("live", settings, lambda ready: live.run(ready, options, log=_say), options.json_path)
    return 1 if report is None else 0


def run_live_heap(settings: Settings, args: argparse.Namespace) -> int:
    from homefeed.bench.live import heap

    json_path = Path(args.json) if args.json else None

    async def measure(ready: Settings) -> heap.HeapReport:
        report = await heap.run(ready, args.subscribers, log=_say, by=args.by)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        return report

    return 1 if _bench("live-heap", settings, measure, json_path) is None else 0


def run_read(settings: Settings, args: argparse.Namespace) -> int:
    from homefeed.bench import reads

    json_path = Path(args.json) if args.json else None
    base = json_path.with_suffix("") if json_path else settings.data_dir / "bench-read"
    options = reads.ReadOptions(
        connections=args.connections,
        seconds=args.seconds,
        warmup=args.warmup,
        rounds=args.rounds,
        users=args.users,
        workers=args.workers,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        min_users=args.min_users,
        replica=args.replica,
        json_path=json_path,
        markdown_path=Path(args.markdown) if args.markdown else base.with_suffix(".md"),
        chart_path=Path(args.chart) if args.chart else base.with_suffix(".png"),
        celebrities=_celebrities(args),
    )
    # Its JSON, table and chart are written (and announced) below.
    report = _bench("read", settings, lambda ready: reads.run(ready, options, log=_say), None)
    if report is None:
        return 1
    for path in reads.write_outputs(report, options):
        print(f"wrote {path}")
    return 0


def run_rank(settings: Settings, args: argparse.Namespace) -> int:
    from homefeed.bench import rank

    options = rank.RankOptions(
        viewers=args.viewers,
        seed=args.seed,
        min_users=args.min_users,
        json_path=Path(args.json) if args.json else None,
    )
    report = _bench("rank", settings, lambda ready: rank.run(ready, options, log=_say), options.json_path)
    return 1 if report is None else 0


def run_chaos(settings: Settings, args: argparse.Namespace) -> int:
    from homefeed.bench import chaos

    options = chaos.ChaosOptions(
        minutes=args.minutes,
        cast=args.cast,
        subscribers=args.subscribers,
        apis=args.apis,
        workers=args.workers,
        ops_per_second=args.rate,
        fault_every=args.fault_every,
        threshold=args.threshold,
        own_valkey=not args.configured_redis,
        min_users=args.min_users,
        json_path=Path(args.json) if args.json else None,
    )
    report = _bench("chaos", settings, lambda ready: chaos.run(ready, options, log=_say), options.json_path)
    if report is None:
        return 1
    clean = report.lost == report.duplicated == report.feeds_differing == report.subscriber_misses == 0
    return 0 if clean else 3


class _Report(Protocol):
    def lines(self) -> list[str]: ...


R = TypeVar("R", bound=_Report)


def _bench(
    name: str,
    settings: Settings,
    run: Callable[[Settings], Coroutine[object, object, R]],
    json_path: Path | None,
) -> R | None:
    """Run one bench against the configured (or embedded) servers; print its report and the JSON's path."""
    from homefeed.bench.errors import BenchError

    try:
        with migrated_servers(settings) as ready:
            report: R = asyncio.run(run(ready))
    except BenchError as exc:
        print(f"homefeed bench {name}: {exc}", file=sys.stderr)
        return None
    print()
    for line in report.lines():
        print(line)
    if json_path is not None:
        print(f"wrote {json_path}")
    return report


def _say(line: str) -> None:
    print(line, flush=True)

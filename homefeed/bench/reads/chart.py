"""The read bench's chart; matplotlib loads here only, and only when a chart is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from homefeed.bench.reads.report import ReadReport


def draw(report: ReadReport, path: Path) -> None:
    """Latency distributions (percentile curves) and throughput, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    colors = {
        "hybrid": "tab:blue",
        "pull": "tab:red",
        "baseline": "tab:gray",
        "persisted": "tab:green",
        "baseline-persisted": "tab:olive",
        "ranked": "tab:purple",
        "persisted-planned": "tab:cyan",
        "hybrid-replica": "tab:orange",
        "pull-replica": "tab:pink",
    }
    for name, r in report.results.items():
        if not r.latencies_ms:
            continue
        ms = np.sort(np.asarray(r.latencies_ms))
        # x: percentile on a "nines" scale, so the tail (p99, p99.9) gets room.
        q = (np.arange(len(ms)) + 0.5) / len(ms)
        lat.plot(-np.log10(1 - q), ms, label=f"{name}", color=colors.get(name))
    ticks = [0, 0.5, 1, 1.30103, 2, 3]
    lat.set_xticks(ticks, ["p0", "p68", "p90", "p95", "p99", "p99.9"])
    lat.set_xlim(0, 3.2)
    lat.set_yscale("log")
    lat.set_ylabel("latency (ms, log scale)")
    lat.set_xlabel("percentile")
    lat.axhline(50, color="black", lw=0.6, ls=":")
    lat.set_title(f"homeFeed(first: 20) at {report.connections} connections")
    lat.legend()
    lat.grid(True, which="both", alpha=0.3)
    names = list(report.results)
    thr.bar(names, [report.results[n].rps for n in names], color=[colors.get(n) for n in names])
    thr.set_title("throughput (requests/s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

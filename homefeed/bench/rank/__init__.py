"""`homefeed bench rank`: does RANKED rank better than LATEST and than the heuristic?

Run on a world seeded with engagement (`homefeed seed --users N --engagement V`), whose hidden
preferences (homefeed/seed/preferences.py) give every (viewer, post) a true like probability.

1. The model is fitted on the logged impressions exactly as `homefeed rank train` fits it
   (every fifth viewer held out), into a file of the bench's own: the served model is untouched.
   Its AUC and the heuristic's on the held-out viewers' impressions are reported.
2. For a sample of held-out viewers, at one instant: their candidates and features (the real
   statement), then three orders of the same candidates: LATEST (newest first), the heuristic
   re-ranked, and RANKED (the model re-ranked). Each is scored by NDCG@20 against the true like
   probabilities (the ideal order sorts the same candidates by them).
3. The RANKED orders' compliance with the diversity rule (share of orders with no violation,
   share of positions violating) and the guaranteed slots (share of viewers owed a slot whose
   first page keeps every one that fits).
4. Serving cost: the model's scoring alone, and scoring plus re-ranking, per candidate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from homefeed.bench.errors import BenchError
from homefeed.bench.rank.metrics import diversity_violations, ndcg, owed_authors, slots_kept
from homefeed.feed.config import Settings
from homefeed.feed.ranking.features import read_candidates
from homefeed.feed.ranking.rerank import rerank
from homefeed.feed.ranking.scoring import Scorer, heuristic
from homefeed.feed.ranking.training import HOLDOUT_MODULUS, NotEnoughData, train
from homefeed.feed.services import open_services
from homefeed.seed.preferences import Preferences


@dataclass(frozen=True)
class RankOptions:
    viewers: int = 500  # held-out viewers evaluated
    first: int = 20  # page size, and k of NDCG@k
    seed: int = 0  # the seed the world (and its preferences) was generated with
    min_users: int = 50_000
    json_path: Path | None = None


@dataclass(frozen=True)
class RankReport:
    users: int
    impressions: int
    liked_impressions: int
    model_version: str
    auc_model: float | None
    auc_heuristic: float | None
    viewers_evaluated: int
    mean_candidates: float
    ndcg_latest: float
    ndcg_heuristic: float
    ndcg_ranked: float
    ranked_vs_latest: float
    ranked_vs_heuristic: float
    diversity_compliant_orders: float
    diversity_violating_positions: float
    slot_viewers: int
    slot_coverage: float | None
    model_us_per_candidate: float
    serving_us_per_candidate: float
    load_average: float

    def lines(self) -> list[str]:
        """The report as printed."""

        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        return [
            f"bench rank: {self.users:,} users; {self.impressions:,} impressions"
            f" ({self.liked_impressions:,} liked)",
            f"held-out AUC: model {f(self.auc_model)}, heuristic {f(self.auc_heuristic)}",
            f"NDCG@20 over {self.viewers_evaluated} held-out viewers"
            f" ({self.mean_candidates:.0f} candidates each):",
            f"  LATEST {self.ndcg_latest:.3f}  heuristic {self.ndcg_heuristic:.3f}"
            f"  RANKED {self.ndcg_ranked:.3f}",
            f"  RANKED / LATEST {self.ranked_vs_latest:.2f}x,"
            f" RANKED / heuristic {self.ranked_vs_heuristic:.2f}x",
            f"diversity: {self.diversity_compliant_orders:.1%} of orders comply; "
            f"{self.diversity_violating_positions:.2%} of positions violate",
            f"guaranteed slots: {f(self.slot_coverage)} of {self.slot_viewers} viewers owed one",
            f"serving: model {self.model_us_per_candidate:.2f} us/candidate, "
            f"with re-ranking {self.serving_us_per_candidate:.2f} us/candidate"
            f" (load average {self.load_average:.1f})",
        ]


async def run(settings: Settings, options: RankOptions, log: Callable[[str], None] = print) -> RankReport:
    """Train, rank, measure (see the module doc)."""
    services = await open_services(settings)
    try:
        pool = services.pool
        users = int(await pool.fetchval("SELECT count(*) FROM users"))
        if users < options.min_users:
            raise BenchError(f"{users} users: seed at least {options.min_users:,} (homefeed seed --users N)")
        path = settings.data_dir / "bench-rank-model.json"
        log("fitting the model on the logged impressions …")
        try:
            trained = await train(pool, path, days=30, limit=5_000_000)
        except NotEnoughData as exc:
            raise BenchError(f"{exc}: seed with engagement first (homefeed seed --engagement V)") from None
        model = Scorer(path)
        prefs = Preferences(options.seed)
        rows = await pool.fetch(
            "SELECT DISTINCT viewer_id FROM impressions WHERE viewer_id % $1 = 0 ORDER BY viewer_id",
            HOLDOUT_MODULUS,
        )
        viewers = [r["viewer_id"] for r in rows][: options.viewers]
        log(f"ranking for {len(viewers)} held-out viewers …")
        now_ms = int(time.time() * 1000)
        window = settings.ranked_window_hours * 3_600_000
        scores: dict[str, list[float]] = {"latest": [], "heuristic": [], "ranked": []}
        compliant, violating, positions, owed, kept, candidates_seen = 0, 0, 0, 0, 0, 0
        model_s = serving_s = 0.0
        for viewer in viewers:
            c = await read_candidates(pool, viewer, now_ms, window, settings.ranked_candidates)
            if len(c) < 2:
                continue
            t0 = time.perf_counter()
            s_model = model.score(c, viewer)
            t1 = time.perf_counter()
            ranked = rerank(c, s_model, options.first)
            t2 = time.perf_counter()
            model_s += t1 - t0
            serving_s += t2 - t0
            candidates_seen += len(c)
            truth = prefs.like_probability(np.full_like(c.ids, viewer), c.authors, c.ids, c.age_hours)
            orders = {
                "latest": list(range(len(c))),
                "heuristic": rerank(c, heuristic(c), options.first),
                "ranked": ranked,
            }
            got = {name: ndcg(truth, order, options.first) for name, order in orders.items()}
            if any(v is None for v in got.values()):
                continue
            for name, value in got.items():
                assert value is not None
                scores[name].append(value)
            broken = diversity_violations([int(c.authors[i]) for i in ranked])
            compliant += broken == 0
            violating += broken
            positions += len(ranked)
            if owed_authors(c):
                owed += 1
                kept += slots_kept(c, ranked, options.first)
        evaluated = len(scores["ranked"])
        if evaluated == 0:
            raise BenchError("no held-out viewer had candidates with a non-zero true relevance")
        means = {k: float(np.mean(v)) for k, v in scores.items()}
        report = RankReport(
            users=users,
            impressions=trained.rows,
            liked_impressions=trained.positives,
            model_version=trained.version,
            auc_model=trained.auc_model,
            auc_heuristic=trained.auc_heuristic,
            viewers_evaluated=evaluated,
            mean_candidates=candidates_seen / max(1, len(viewers)),
            ndcg_latest=means["latest"],
            ndcg_heuristic=means["heuristic"],
            ndcg_ranked=means["ranked"],
            ranked_vs_latest=means["ranked"] / means["latest"],
            ranked_vs_heuristic=means["ranked"] / means["heuristic"],
            diversity_compliant_orders=compliant / evaluated,
            diversity_violating_positions=violating / max(1, positions),
            slot_viewers=owed,
            slot_coverage=kept / owed if owed else None,
            model_us_per_candidate=model_s / max(1, candidates_seen) * 1e6,
            serving_us_per_candidate=serving_s / max(1, candidates_seen) * 1e6,
            load_average=_load(),
        )
        if options.json_path is not None:
            options.json_path.write_text(json.dumps(asdict(report), indent=2) + "\n")
        return report
    finally:
        await services.close()


def _load() -> float:
    import os

    return os.getloadavg()[0]

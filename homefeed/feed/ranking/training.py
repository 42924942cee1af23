"""Fitting the ranking model from logged impressions and the likes that followed them.

A row is an impression (features as the ranker saw them, see impressions.py); its label is
whether the viewer liked the post after it was shown. Impressions of posts the viewer had
liked before are left out: nothing was left to predict.

The model is scikit-learn's logistic regression on standardised features. Why this one: its
predictions are a dot product, so serving is one numpy matrix-vector product over a page's
candidates with no ML library in the API process and no pickled code to load (the file is
JSON, scoring.py); it trains in seconds on millions of rows; and its probabilities are
calibrated enough to log and compare. Gradient boosting ranks non-linear features better, but
would need the library and its model format at serving time, and a tree walk per candidate.
Viewers are split into training and held-out sets (by id), so the reported AUC is on viewers
the model never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np

from homefeed.feed.ranking.features import F64, NAMES, B
from homefeed.feed.ranking.scoring import HALF_LIFE_HOURS, Model, write_model

# Every fifth viewer (by id) is held out.
HOLDOUT_MODULUS = 5

_ROWS = """
SELECT i.viewer_id, i.features,
       EXISTS (SELECT 1 FROM likes l
               WHERE l.user_id = i.viewer_id AND l.post_id = i.post_id
                 AND l.created_at >= i.shown_at) AS liked
FROM impressions i
WHERE i.shown_at >= $1
  AND NOT EXISTS (SELECT 1 FROM likes l
                  WHERE l.user_id = i.viewer_id AND l.post_id = i.post_id AND l.created_at < i.shown_at)
ORDER BY i.shown_at DESC
LIMIT $2
"""


class NotEnoughData(Exception):
    """Too few labelled impressions (or only one label) to fit a model."""


@dataclass(frozen=True)
class Dataset:
    """Labelled impressions: features (NAMES), labels, and whether each row is held out."""

    x: F64
    y: B
    held_out: B


@dataclass(frozen=True)
class TrainReport:
    version: str
    path: Path
    rows: int
    positives: int
    held_out_rows: int
    auc_model: float | None
    auc_heuristic: float | None
    coefficients: dict[str, float]


async def load_dataset(pool: asyncpg.Pool, *, days: int, limit: int) -> Dataset:
    """The newest `limit` labelled impressions of the last `days`."""
    since = datetime.now(UTC) - timedelta(days=days)
    rows = await pool.fetch(_ROWS, since, limit)
    x = np.array([r["features"] for r in rows], dtype=np.float64).reshape(len(rows), len(NAMES))
    y = np.fromiter((r["liked"] for r in rows), np.bool_, len(rows))
    viewers = np.fromiter((r["viewer_id"] for r in rows), np.int64, len(rows))
    return Dataset(x, y, viewers % HOLDOUT_MODULUS == 0)


def heuristic_scores(x: F64) -> F64:
    """The heuristic (scoring.heuristic) from a feature matrix."""
    age = x[:, NAMES.index("age_hours")]
    log_social, log_affinity = x[:, NAMES.index("log_social")], x[:, NAMES.index("log_affinity")]
    scores: F64 = np.exp2(-age / HALF_LIFE_HOURS) * (1.0 + log_affinity + log_social)
    return scores


def auc(y: B, scores: F64) -> float | None:
    """Area under the ROC curve, None when only one label occurs."""
    from sklearn.metrics import roc_auc_score

    if len(y) == 0 or y.all() or not y.any():
        return None
    return float(roc_auc_score(y, scores))


def fit(data: Dataset, version: str) -> Model:
    """A logistic regression fitted on the training viewers."""
    from sklearn.linear_model import LogisticRegression

    train = ~data.held_out
    x, y = data.x[train], data.y[train]
    if len(y) < 50 or y.all() or not y.any():
        raise NotEnoughData(
            f"{len(y)} training impressions, {int(y.sum())} liked: need 50 or more, with both labels"
        )
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    fitted = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
    return Model(version, mean, scale, fitted.coef_[0].astype(np.float64), float(fitted.intercept_[0]))


async def train(pool: asyncpg.Pool, path: Path, *, days: int = 14, limit: int = 2_000_000) -> TrainReport:
    """Fit a model on the logged impressions, install it at `path`, and report how it ranks."""
    data = await load_dataset(pool, days=days, limit=limit)
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{len(data.y)}"
    model = fit(data, version)
    held_x, held_y = data.x[data.held_out], data.y[data.held_out]
    write_model(path, model)
    return TrainReport(
        version=version,
        path=path,
        rows=len(data.y),
        positives=int(data.y.sum()),
        held_out_rows=len(held_y),
        auc_model=auc(held_y, model.score(held_x)) if len(held_y) else None,
        auc_heuristic=auc(held_y, heuristic_scores(held_x)) if len(held_y) else None,
        coefficients=dict(zip(NAMES, model.coef.tolist(), strict=True)),
    )

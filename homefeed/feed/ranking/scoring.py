"""Scores for candidates: a learned model when one is installed, else the documented heuristic.

The heuristic (docs/design.md, "Ranked feed"): recency decay * (1 + affinity + social proof), with
a 24-hour half-life and both signals on a log scale, so a fresh install ranks from its first minute.

A model is a logistic regression fitted by `homefeed rank train` (scikit-learn) and stored as
JSON: its feature names, the standardisation and the coefficients. Serving needs only numpy
(one matrix-vector product per page), loads no pickled code, and refuses a file whose features
differ from the engine's.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homefeed.feed.ranking.features import F64, NAMES, Candidates

log = logging.getLogger(__name__)

FORMAT = "homefeed-rank-logreg"
HALF_LIFE_HOURS = 24.0
# How often a process looks at the model file's modification time.
CHECK_EVERY_SECONDS = 5.0


def heuristic(candidates: Candidates) -> F64:
    """Recency decay * (1 + affinity + social proof)."""
    decay = np.exp2(-candidates.age_hours / HALF_LIFE_HOURS)
    return decay * (1.0 + np.log1p(candidates.affinity) + np.log1p(candidates.social))


@dataclass(frozen=True)
class Model:
    """A fitted logistic regression over NAMES, standardised inputs."""

    version: str
    mean: F64
    scale: F64
    coef: F64
    intercept: float

    def score(self, x: F64) -> F64:
        """The predicted probability of a like for each row of x."""
        logit = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def to_json(self) -> str:
        """The model file's text."""
        return json.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "features": list(NAMES),
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "coef": self.coef.tolist(),
                "intercept": self.intercept,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Model:
        """A model from its file's text; ValueError if it is not one this engine can serve."""
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if tuple(doc.get("features", ())) != NAMES:
            raise ValueError(f"model features {doc.get('features')} differ from the engine's {list(NAMES)}")
        arrays = [np.asarray(doc[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (len(NAMES),) for a in arrays):
            raise ValueError("model arrays do not match the feature count")
        mean, scale, coef = arrays
        return cls(str(doc["version"]), mean, np.where(scale > 0, scale, 1.0), coef, float(doc["intercept"]))


def write_model(path: Path, model: Model) -> None:
    """Install a model file atomically (readers see the old file or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(model.to_json())
    os.replace(tmp, path)


class Scorer:
    """Scores with the model file at `path` (reloaded when it changes), or the heuristic."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.model: Model | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.reload()

    @property
    def version(self) -> str:
        """The model's version, or "heuristic"."""
        return "heuristic" if self.model is None else self.model.version

    def reload(self) -> None:
        """Load the model file if it changed since the last look (a bad file keeps the old model)."""
        self._checked = time.monotonic()
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self.model is not None:
                log.warning("rank model %s is gone: ranking with the heuristic", self.path)
            self.model, self._stamp = None, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self.model = Model.from_json(self.path.read_text())
        except (OSError, ValueError, KeyError) as exc:
            log.error("rank model %s not loaded (%s): keeping %s", self.path, exc, self.version)
            return
        log.info("rank model %s loaded: version %s", self.path, self.model.version)

    def score(self, candidates: Candidates, viewer: int) -> F64:
        """One score per candidate; higher ranks first."""
        if time.monotonic() - self._checked > CHECK_EVERY_SECONDS:
            self.reload()
        if self.model is None or len(candidates) == 0:
            return heuristic(candidates)
        return self.model.score(candidates.matrix(viewer))

"""`rank train`: a model learned from impressions and the likes after them, served from its file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from homefeed.feed.ranking.features import NAMES
from homefeed.feed.ranking.scoring import Model, Scorer, write_model
from homefeed.feed.ranking.training import NotEnoughData, train
from homefeed.feed.services import Services

RATE = NAMES.index("log_author_rate")


async def logged_world(services: Services, rng: random.Random) -> None:
    """Impressions whose likes follow a signal the heuristic ignores (the author's engagement),
    plus likes made before their impression (to be left out)."""
    author = (await services.users.create("author", "a", "x")).id
    viewers = [(await services.users.create(f"v{i}", "v", "x")).id for i in range(25)]
    posts = [(await services.posts.create(author, f"{i}")).id for i in range(30)]
    impressions, likes = [], []
    for v in viewers:
        for p in posts:
            x = [rng.uniform(0, 72), 0, 0, 0, rng.uniform(0, 2), 0, rng.uniform(0, 3)]
            impressions.append((v, p, 0, 1, x))
            if rng.random() < 1 / (1 + np.exp(-(3 * x[RATE] - 5))):
                likes.append((v, p))
    await services.pool.executemany(
        """INSERT INTO impressions (viewer_id, post_id, position, feed_order, shown_at, features)
           VALUES ($1, $2, $3, $4, now() - interval '1 hour', $5)""",
        impressions,
    )
    await services.pool.executemany("INSERT INTO likes (user_id, post_id) VALUES ($1, $2)", likes)


async def test_the_model_learns_what_the_heuristic_cannot_see(services: Services, tmp_path: Path) -> None:
    await logged_world(services, random.Random(3))
    path = tmp_path / "model.json"
    report = await train(services.pool, path, days=1, limit=100_000)
    assert report.rows == 750 and report.held_out_rows > 0
    assert report.auc_model is not None and report.auc_heuristic is not None
    assert report.auc_model > 0.8 > report.auc_heuristic
    assert report.coefficients["log_author_rate"] > 0
    model = Model.from_json(path.read_text())
    assert model.version == report.version


async def test_too_few_impressions_is_a_clear_error(services: Services, tmp_path: Path) -> None:
    with pytest.raises(NotEnoughData):
        await train(services.pool, tmp_path / "model.json", days=1, limit=100)
    assert not (tmp_path / "model.json").exists()


def test_the_scorer_follows_the_file_and_keeps_a_good_model_over_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    scorer = Scorer(path)
    assert scorer.version == "heuristic"
    n = len(NAMES)
    write_model(path, Model("v1", np.zeros(n), np.ones(n), np.ones(n), 0.0))
    scorer.reload()
    assert scorer.version == "v1"
    path.write_text("{not json")
    os.utime(path, ns=(1, 1))
    scorer.reload()
    assert scorer.version == "v1"
    write_model(path, Model("v2", np.zeros(n), np.ones(n), -np.ones(n), 0.0))
    scorer.reload()
    assert scorer.version == "v2"
    path.unlink()
    scorer.reload()
    assert scorer.version == "heuristic"


def test_a_model_for_other_features_is_refused() -> None:
    n = len(NAMES)
    text = Model("v", np.zeros(n), np.ones(n), np.ones(n), 0.0).to_json().replace("age_hours", "age_days")
    with pytest.raises(ValueError, match="features"):
        Model.from_json(text)

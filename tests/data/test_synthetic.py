"""The synthetic generator: deterministic, power-law popular, daily cycle, learnable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from recsys.data import (
    DAILY_PROFILE,
    generate_synthetic,
    synthetic_item_vectors,
    synthetic_world,
    time_split,
)
from recsys.errors import ConfigError

SMALL = {"n_users": 300, "n_items": 1000, "n_interactions": 20_000, "n_categories": 8}


@pytest.fixture(scope="module")
def default():
    return generate_synthetic()


def test_same_seed_gives_the_same_frame():
    a = generate_synthetic(**SMALL, seed=3)
    b = generate_synthetic(**SMALL, seed=3)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.item_category, b.item_category)


def test_another_seed_gives_another_frame():
    a = generate_synthetic(**SMALL, seed=3)
    b = generate_synthetic(**SMALL, seed=4)
    assert not a.frame.equals(b.frame)


def test_shapes_dtypes_and_id_ranges():
    inter = generate_synthetic(**SMALL, days=7, start="2024-03-01")
    frame = inter.frame
    assert (len(inter), inter.n_users, inter.n_items) == (20_000, 300, 1000)
    assert frame.dtypes.astype(str).to_dict() == {
        "user": "int64",
        "item": "int64",
        "timestamp": "float64",
        "weight": "float32",
    }
    assert frame["user"].between(0, 299).all()
    assert frame["item"].between(0, 999).all()
    assert (frame["weight"] == 1).all()
    assert frame["timestamp"].is_monotonic_increasing
    start = pd.Timestamp("2024-03-01", tz="UTC").timestamp()
    assert frame["timestamp"].between(start, start + 7 * 86_400).all()
    assert inter.item_category.shape == (1000,)
    assert set(inter.item_category) == set(range(8))  # every category has items


def test_top_percent_of_items_holds_a_large_share(default):
    counts = np.sort(np.bincount(default.items, minlength=default.n_items))[::-1]
    top_share = counts[: default.n_items // 100].sum() / counts.sum()
    assert top_share > 0.3  # Zipf(1) over 5000 items alone would give 0.49
    flat = generate_synthetic(popularity_alpha=0.0)
    flat_counts = np.sort(np.bincount(flat.items, minlength=flat.n_items))[::-1]
    assert flat_counts[:50].sum() / flat_counts.sum() < 0.1


def test_hours_follow_the_daily_profile(default):
    hours = ((default.timestamps % 86_400) // 3600).astype(int)
    observed = np.bincount(hours, minlength=24) / len(hours)
    expected = DAILY_PROFILE / DAILY_PROFILE.sum()
    sigma = np.sqrt(expected * (1 - expected) / len(hours))
    assert np.all(np.abs(observed - expected) < 5 * sigma)
    # Read as a sentence: 19-21 h are several times busier than 2-4 h.
    assert observed[19:22].sum() > 5 * observed[2:5].sum()


def test_items_cluster_around_their_category_centre():
    world = synthetic_world(n_users=100, n_items=2000, n_categories=10, dim=16)
    dist = ((world.item_factors[:, None, :] - world.category_centers[None]) ** 2).sum(-1)
    assert (dist.argmin(axis=1) == world.item_category).mean() > 0.95
    assert world.item_popularity.sum() == pytest.approx(1.0)


def _recall_at_10(scores: np.ndarray, users: np.ndarray, train, test) -> float:
    seen, truth = train.items_by_user(), test.items_by_user()
    scores = scores.astype(np.float64, copy=True)
    for row, user in enumerate(users):
        scores[row, seen.get(user, [])] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    hits = [np.isin(truth[u], top[r]).sum() / min(10, len(truth[u])) for r, u in enumerate(users)]
    return float(np.mean(hits))


def test_a_learned_model_beats_popularity_clearly(default):
    split = time_split(default)
    train, users = split.train, split.test_users()
    matrix = sp.csr_matrix(
        (np.ones(len(train)), (train.users, train.items)), shape=(train.n_users, train.n_items)
    )
    u, s, vt = svds(matrix, k=16, random_state=0)
    popularity = np.bincount(train.items, minlength=train.n_items)
    pop_recall = _recall_at_10(np.tile(popularity, (len(users), 1)), users, train, split.test)
    svd_recall = _recall_at_10((u[users] * s) @ vt, users, train, split.test)
    assert svd_recall > 1.5 * pop_recall > 0


def test_item_vectors_are_clustered_float32_and_seeded():
    vectors = synthetic_item_vectors(2000, dim=32, n_clusters=20, seed=1)
    assert vectors.shape == (2000, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, synthetic_item_vectors(2000, 32, 20, 1))
    sq = (vectors**2).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * vectors @ vectors.T, 0))
    np.fill_diagonal(dist, np.inf)
    # Clustered: a nearest neighbour is far closer than a typical point.
    assert np.median(dist.min(axis=1)) < 0.5 * np.median(dist[np.isfinite(dist)])
    unit = synthetic_item_vectors(100, dim=8, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [{"n_users": 0}, {"n_interactions": -1}, {"popularity_alpha": -0.5}, {"n_categories": 10**6}],
)
def test_bad_sizes_raise_config_error(bad):
    with pytest.raises(ConfigError, match="synthetic data"):
        generate_synthetic(**{**SMALL, **bad})

"""User and item features come from train alone, with exact values on a worked example."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recsys.data import build_features, generate_synthetic, time_split

from .conftest import tiny

DAY = 86_400.0


@pytest.fixture
def worked():
    # Users a, b; items x, y, z (z never interacted with); x and y in category 0, z in 1.
    inter = tiny(
        [("a", "x", 0 * DAY), ("a", "y", 1 * DAY), ("b", "x", 3 * DAY), ("a", "x", 4 * DAY)],
        weights=[1.0, 3.0, 2.0, 5.0],
    )
    inter = replace(inter, n_items=3, item_ids=np.array(["x", "y", "z"]))
    return replace(inter, item_category=np.array([0, 0, 1]))


def test_worked_example_item_features(worked):
    tables = build_features(worked, recent_days=2)
    frame = tables.item_frame()
    assert list(frame.columns) == [
        "item_count",
        "item_log_count",
        "item_count_recent",
        "item_recency_days",
        "item_mean_weight",
        "item_category",
    ]
    assert frame["item_count"].tolist() == [3, 1, 0]
    assert frame["item_count_recent"].tolist() == [2, 0, 0]  # t > 4 - 2 days
    # Days before train end (day 4); z was never seen, so it counts from the start (day 0).
    assert frame["item_recency_days"].tolist() == [0, 3, 4]
    assert frame["item_mean_weight"].tolist() == pytest.approx([8 / 3, 3, 0])
    assert frame["item_category"].tolist() == [0, 0, 1]


def test_worked_example_user_features(worked):
    frame = build_features(worked).user_frame()
    assert frame["user_count"].tolist() == [3, 1]
    assert frame["user_mean_weight"].tolist() == [3, 2]
    assert frame["user_recency_days"].tolist() == [0, 1]
    assert frame[["user_cat_affinity_0", "user_cat_affinity_1"]].values.tolist() == [[1, 0]] * 2


def test_pair_features_broadcast_users_over_candidates(worked):
    tables = build_features(worked)
    pairs = tables.pair_features(np.array([[0], [1]]), np.array([[0, 2], [1, 2]]))
    assert pairs.shape == (2, 2, len(tables.pair_feature_names))
    assert pairs.dtype == np.float32
    assert tables.pair_feature_names[-1] == "user_item_category_affinity"
    assert pairs[..., -1].tolist() == [[1, 0], [1, 0]]  # both users only ever took category 0


def test_no_categories_means_no_category_columns(worked):
    tables = build_features(replace(worked, item_category=None))
    assert "item_category" not in tables.item_feature_names
    assert tables.user_features.shape == (2, 4)
    assert tables.pair_features(np.array([0]), np.array([1])).shape == (1, 9)


def test_features_of_the_train_part_ignore_later_data():
    inter = generate_synthetic(n_users=400, n_items=1500, n_interactions=20_000)
    split = time_split(inter)
    tables = build_features(split.train)
    items = tables.item_frame()
    assert tables.train_end == split.train.timestamps.max() < split.valid_start
    assert items["item_count"].sum() == len(split.train)
    assert tables.user_frame()["user_count"].sum() == len(split.train)
    assert items["item_recency_days"].min() == 0  # measured at train end, not test end
    # Items first seen after the train period look exactly like never-seen items.
    later = np.setdiff1d(inter.items[inter.timestamps >= split.valid_start], split.train.items)
    assert len(later) > 0
    assert (items.loc[later, "item_count"] == 0).all()
    assert (items.loc[later, "item_recency_days"] == items["item_recency_days"].max()).all()
    assert np.isfinite(tables.user_features).all()
    assert np.isfinite(tables.item_features).all()
    affinity = tables.user_category_affinity
    seen_users = np.unique(split.train.users)
    np.testing.assert_allclose(affinity[seen_users].sum(axis=1), 1.0, rtol=1e-5)

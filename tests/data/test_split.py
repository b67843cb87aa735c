"""Global time split: sizes by quantile, no look-ahead, cold rows removed and counted."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data import generate_synthetic, time_split
from recsys.errors import ConfigError, DataError

from .conftest import tiny


@pytest.fixture(scope="module")
def synthetic():
    return generate_synthetic(n_users=500, n_items=2000, n_interactions=30_000, seed=1)


def test_worked_example_with_cold_rows():
    # Ten interactions at t = 0..9: train is t < 6, valid 6 <= t < 8, test t >= 8.
    inter = tiny(
        [("a", "x", 0), ("b", "y", 1), ("a", "y", 2), ("b", "x", 3), ("a", "x", 4),
         ("b", "y", 5), ("a", "y", 6), ("c", "x", 7), ("a", "z", 8), ("b", "x", 9)]
    )  # fmt: skip
    split = time_split(inter, valid_frac=0.2, test_frac=0.2)
    assert (split.valid_start, split.test_start) == (5.4, 7.2)
    assert split.train.timestamps.tolist() == [0, 1, 2, 3, 4, 5]
    assert split.valid.timestamps.tolist() == [6]  # ("c", "x", 7): c never seen in train
    assert split.test.timestamps.tolist() == [9]  # ("a", "z", 8): z never seen in train
    assert split.dropped == {
        "valid_cold_user": 1,
        "valid_cold_item": 0,
        "test_cold_user": 0,
        "test_cold_item": 1,
    }
    b = int(np.flatnonzero(inter.user_ids == "b")[0])
    assert split.test_users().tolist() == [b]
    assert split.train.n_users == split.test.n_users == 3  # one id space for all parts


def test_parts_follow_the_fractions_and_account_for_every_row(synthetic):
    split = time_split(synthetic, valid_frac=0.1, test_frac=0.2)
    n = len(synthetic)
    assert len(split.train) == pytest.approx(0.7 * n, abs=1)
    valid_period = len(split.valid) + split.dropped["valid_cold_user"]
    valid_period += split.dropped["valid_cold_item"]
    assert valid_period == pytest.approx(0.1 * n, abs=1)
    assert len(split.train) + len(split.valid) + len(split.test) + sum(split.dropped.values()) == n


def test_no_part_sees_the_future_of_the_next(synthetic):
    split = time_split(synthetic)
    assert split.train.timestamps.max() < split.valid_start <= split.valid.timestamps.min()
    assert split.valid.timestamps.max() < split.test_start <= split.test.timestamps.min()


def test_evaluation_rows_only_have_users_and_items_seen_in_train(synthetic):
    split = time_split(synthetic)
    for part in (split.valid, split.test):
        assert np.isin(part.users, split.train.users).all()
        assert np.isin(part.items, split.train.items).all()
    assert split.test_users().tolist() == sorted(set(split.test.users.tolist()))


@pytest.mark.parametrize(("valid", "test"), [(0.0, 0.1), (0.1, 1.0), (-0.1, 0.1), (0.5, 0.5)])
def test_bad_fractions_are_config_errors(synthetic, valid, test):
    with pytest.raises(ConfigError, match="time_split"):
        time_split(synthetic, valid_frac=valid, test_frac=test)


def test_identical_timestamps_leave_train_empty():
    inter = tiny([("a", "x", 5), ("b", "y", 5), ("a", "y", 5)])
    with pytest.raises(DataError, match="train part is empty"):
        time_split(inter)


def test_an_empty_test_part_is_a_data_error():
    # The test period holds only a user never seen before.
    inter = tiny([("a", "x", 0), ("a", "y", 1), ("a", "x", 2), ("a", "y", 3), ("new", "x", 4)])
    with pytest.raises(DataError, match="test part is empty"):
        time_split(inter, valid_frac=0.2, test_frac=0.2)

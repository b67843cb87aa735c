"""Global time split: sizes by quantile, no look-ahead, cold rows removed and counted."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data import generate_synthetic, time_split
from recsys.data.interactions import from_raw
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


def test_per_user_split_holds_out_each_users_latest_rows():
    # User 0 has 10 interactions at t=0..9, user 1 has 2 (too few to hold out), user 2 has 5.
    users = [0] * 10 + [1] * 2 + [2] * 5
    items = [i % 3 for i in range(10)] + [0, 1] + [0, 1, 2, 0, 1]  # every item seen in train
    times = [*list(range(10)), 100, 101, 50, 51, 52, 53, 54]
    inter = from_raw(np.array(users), np.array(items), np.array(times, dtype=float))
    split = time_split(inter, valid_frac=0.2, test_frac=0.2, mode="per_user")
    test = split.test.frame.groupby("user")["timestamp"].apply(list).to_dict()
    valid = split.valid.frame.groupby("user")["timestamp"].apply(list).to_dict()
    # User 0: floor(10 * 0.2) = 2 latest rows to test, the 2 before to valid.
    assert test[0] == [8.0, 9.0] and valid[0] == [6.0, 7.0]
    # User 2: floor(5 * 0.2) = 1 row each (at least one).
    assert test[2] == [54.0] and valid[2] == [53.0]
    assert 1 not in test and 1 not in valid
    assert split.test_users().tolist() == [0, 2]


def test_unknown_split_mode_is_named():
    inter = from_raw(np.zeros(5), np.arange(5), np.arange(5, dtype=float))
    with pytest.raises(ConfigError, match="mode must be one of"):
        time_split(inter, mode="random")

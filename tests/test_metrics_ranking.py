import math

import numpy as np
import pytest

from recsys.errors import DataError
from recsys.metrics_ranking import (
    coverage,
    hit_matrix,
    paired_bootstrap_relative,
    per_user_metrics,
    ranking_metrics,
    recall_against,
)


def test_worked_example_two_users():
    # user 0: relevant {2, 7}; list [2, 5, 7] -> hits at ranks 1 and 3
    # user 1: relevant {9};    list [4, 9, -1] -> hit at rank 2
    recs = np.array([[2, 5, 7], [4, 9, -1]])
    truth = [np.array([7, 2]), np.array([9])]
    m = ranking_metrics(recs, truth, n_items=10, k=3)
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(3)) / 1
    assert m["ndcg@3"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["recall@3"] == pytest.approx((2 / 2 + 1 / 1) / 2)
    assert m["hr@3"] == 1.0
    assert m["mrr@3"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["coverage"] == pytest.approx(5 / 10)  # items 2, 4, 5, 7, 9
    assert m["n_users"] == 2


def test_cut_at_k_and_users_without_truth_are_skipped():
    recs = np.array([[1, 2, 3], [1, 2, 3]])
    truth = [np.array([3]), np.array([], np.int64)]
    m = ranking_metrics(recs, truth, n_items=5, k=2)
    assert m == {
        "ndcg@2": 0.0,
        "recall@2": 0.0,
        "hr@2": 0.0,
        "mrr@2": 0.0,
        "coverage": 2 / 5,
        "n_users": 1,
    }


def test_recall_is_not_capped_at_k():
    m = ranking_metrics(np.array([[0, 1]]), [np.array([0, 1, 2, 3])], n_items=4, k=2)
    assert m["recall@2"] == 0.5
    assert m["ndcg@2"] == 1.0  # ideal list holds only k = 2 hits


def test_hit_matrix_ignores_padding_and_checks_shapes():
    hits = hit_matrix(np.array([[-1, 3]]), [np.array([3])], n_items=5)
    assert hits.tolist() == [[False, True]]
    with pytest.raises(DataError):
        hit_matrix(np.array([[1]]), [np.array([1]), np.array([2])], n_items=5)


def test_no_relevant_items_at_all_is_an_error():
    with pytest.raises(DataError, match="nothing to evaluate"):
        ranking_metrics(np.array([[1]]), [np.array([], np.int64)], n_items=3)


def test_recall_against_reference_lists():
    found = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[1, 2, 9], [4, 5, 6]])
    assert recall_against(found, exact) == pytest.approx((2 / 3 + 1) / 2)
    assert coverage(np.array([[0, -1]]), 4) == 0.25


def test_per_user_metrics_match_the_means_and_point_at_their_rows():
    recs = np.array([[2, 5, 7], [1, 2, 3], [4, 9, -1]])
    truth = [np.array([7, 2]), np.array([], np.int64), np.array([9])]
    per_user = per_user_metrics(recs, truth, n_items=10, k=3)
    np.testing.assert_array_equal(per_user["user_index"], [0, 2])
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    np.testing.assert_allclose(per_user["ndcg@3"], [ndcg0, 1 / math.log2(3)])
    np.testing.assert_allclose(per_user["mrr@3"], [1.0, 0.5])
    means = ranking_metrics(recs, truth, n_items=10, k=3)
    for name in ("ndcg@3", "recall@3", "hr@3", "mrr@3"):
        assert means[name] == pytest.approx(per_user[name].mean())


def test_paired_bootstrap_of_a_constant_ratio_has_a_point_interval():
    source = np.random.default_rng(0).uniform(0.1, 1.0, 200)
    rel, low, high = paired_bootstrap_relative([source * 0.9], [source], n_boot=200)
    assert rel == pytest.approx(-0.1)
    assert low == pytest.approx(-0.1) and high == pytest.approx(-0.1)


def test_paired_bootstrap_interval_matches_the_standard_error_of_a_mean():
    # variant = source + independent noise of sd 0.5 around a source mean of 10: the relative
    # difference is mean(noise)/10, with standard error 0.5 / sqrt(n) / 10
    rng = np.random.default_rng(1)
    n = 2000
    source = np.full(n, 10.0)
    variant = source + rng.normal(0.0, 0.5, n)
    rel, low, high = paired_bootstrap_relative([variant], [source], n_boot=2000)
    se = 0.5 / math.sqrt(n) / 10
    assert rel == pytest.approx((variant.mean() - 10) / 10)
    assert low < rel < high
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.15)


def test_paired_bootstrap_averages_runs_and_checks_pairing():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    rel, _, _ = paired_bootstrap_relative([a, a * 1.5], [b, b], n_boot=50)
    assert rel == pytest.approx(((2 / 2 - 1) + (3 / 2 - 1)) / 2)
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap_relative([a], [b[:2]])
    with pytest.raises(ValueError, match="one variant"):
        paired_bootstrap_relative([a], [])

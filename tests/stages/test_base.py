import numpy as np
import pytest

from recsys.errors import ConfigError, DataError
from recsys.stages.base import Candidates, top_n
from recsys.stages.history import SeenItems


def test_top_n_sorts_by_new_scores_and_puts_padding_last():
    cands = Candidates(
        users=np.array([0, 1]),
        items=np.array([[10, 11, 12], [20, -1, 21]]),
        scores=np.zeros((2, 3), np.float32),
    )
    new = np.array([[0.1, 0.9, 0.5], [0.2, 9.0, 0.3]], np.float32)
    out = top_n(cands, new, 2)
    assert out.items.tolist() == [[11, 12], [21, 20]]
    np.testing.assert_allclose(out.scores, [[0.9, 0.5], [0.3, 0.2]])
    full = top_n(cands, new, 3)
    assert full.items[1].tolist() == [21, 20, -1]
    assert full.scores[1, 2] == -np.inf


def test_top_n_refuses_more_than_it_has():
    cands = Candidates(np.array([0]), np.array([[1, 2]]), np.zeros((1, 2), np.float32))
    with pytest.raises(ConfigError, match="only 2 candidates"):
        top_n(cands, cands.scores, 3)


def test_candidates_check_shapes():
    with pytest.raises(DataError):
        Candidates(np.array([0]), np.zeros((1, 3), np.int64), np.zeros((1, 2), np.float32))


def test_seen_items_filter_keeps_first_unseen_in_order():
    seen = SeenItems(np.array([0 * 10 + 3, 1 * 10 + 5]), n_users=2, n_items=10)
    items = np.array([[3, 4, 5, 6], [5, 4, 3, 2]])
    scores = np.array([[4, 3, 2, 1], [4, 3, 2, 1]], np.float32)
    out_items, out_scores = seen.filter_topk(np.array([0, 1]), items, scores, 2)
    assert out_items.tolist() == [[4, 5], [4, 3]]
    assert out_scores.tolist() == [[3, 2], [3, 2]]
    assert seen.max_count(np.array([0, 1])) == 1


def test_seen_items_pad_when_too_few_unseen():
    seen = SeenItems(np.array([0, 1]), n_users=1, n_items=3)
    out_items, out_scores = seen.filter_topk(
        np.array([0]), np.array([[0, 1, 2]]), np.array([[3.0, 2.0, 1.0]]), 2
    )
    assert out_items.tolist() == [[2, -1]]
    assert out_scores[0, 1] == -np.inf

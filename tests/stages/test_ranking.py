import numpy as np
import pytest

from recsys.errors import ArtifactError, ConfigError, DataError
from recsys.metrics_ranking import ranking_metrics
from recsys.stages.base import Candidates
from recsys.stages.ranking import (
    IdentityRanker,
    LightGBMRanker,
    PopularityRanker,
    candidate_labels,
)
from recsys.stages.retrieval import FaissRetriever
from tests.stages.conftest import interactions, make_small_split, make_two_tower


@pytest.fixture(scope="module")
def valid_candidates():
    split = make_small_split()
    retriever = FaissRetriever(make_two_tower(), "Flat").fit(split.train)
    return retriever.retrieve(split.valid_users(), 50)


@pytest.fixture(scope="module")
def lgbm(valid_candidates):
    small_split = make_small_split()
    ranker = LightGBMRanker(n_estimators=30, num_leaves=7, min_child_samples=5)
    return ranker.fit(small_split.train, small_split.valid, valid_candidates)


def ndcg(cands, split):
    truth = [split.valid.items_by_user().get(int(u), np.empty(0)) for u in cands.users]
    return ranking_metrics(cands.items, truth, split.train.n_items, k=10)["ndcg@10"]


def test_candidate_labels_mark_validation_items():
    valid = interactions([(0, 3), (1, 4)], n_items=6)
    cands = Candidates(np.array([0, 1]), np.array([[3, 4, -1], [3, 4, 5]]), np.zeros((2, 3)))
    assert candidate_labels(cands, valid).tolist() == [[1, 0, 0], [0, 1, 0]]


def test_lightgbm_reorders_candidates_better_than_retrieval_on_its_training_lists(
    small_split, valid_candidates, lgbm
):
    ranked = lgbm.rank(valid_candidates, 10)
    assert ranked.items.shape == (len(valid_candidates), 10)
    assert ndcg(ranked, small_split) > ndcg(valid_candidates.head(10), small_split)


def test_lightgbm_is_deterministic_for_a_seed(small_split, valid_candidates, lgbm):
    again = LightGBMRanker(n_estimators=30, num_leaves=7, min_child_samples=5)
    again.fit(small_split.train, small_split.valid, valid_candidates)
    np.testing.assert_array_equal(again.score(valid_candidates), lgbm.score(valid_candidates))


def test_onnx_backend_matches_native(small_split, valid_candidates, lgbm, tmp_path):
    lgbm.save(tmp_path)
    onnx = LightGBMRanker.load(tmp_path)
    onnx.backend = "onnx"
    onnx._prepare_backend()
    np.testing.assert_allclose(
        onnx.score(valid_candidates), lgbm.score(valid_candidates), rtol=1e-4, atol=1e-4
    )
    assert onnx.name == "lightgbm_onnx"


def test_save_load_round_trip_and_corrupt_model(valid_candidates, lgbm, tmp_path):
    lgbm.save(tmp_path)
    loaded = LightGBMRanker.load(tmp_path)
    np.testing.assert_array_equal(loaded.score(valid_candidates), lgbm.score(valid_candidates))
    (tmp_path / "model.txt").write_text("tree\nnonsense")
    with pytest.raises(ArtifactError, match="cannot load LightGBM ranker"):
        LightGBMRanker.load(tmp_path)
    (tmp_path / "model.txt").unlink()
    with pytest.raises(ArtifactError):
        LightGBMRanker.load(tmp_path)


def test_no_positive_among_candidates_is_a_data_error(small_split, valid_candidates):
    empty = Candidates(valid_candidates.users[:2], np.full((2, 3), -1), np.zeros((2, 3)))
    with pytest.raises(DataError, match="no validation item"):
        LightGBMRanker().fit(small_split.train, small_split.valid, empty)


def test_unknown_backend(small_split, valid_candidates):
    with pytest.raises(ConfigError, match="backend"):
        LightGBMRanker(backend="tpu").fit(small_split.train, small_split.valid, valid_candidates)


def test_popularity_and_identity_rankers():
    train = interactions([(0, 1), (1, 1), (1, 2), (2, 2), (2, 1), (2, 0)], n_items=3)
    cands = Candidates(np.array([0]), np.array([[0, 2, 1]]), np.array([[3.0, 2.0, 1.0]]))
    assert PopularityRanker().fit(train, train, cands).rank(cands, 2).items.tolist() == [[1, 2]]
    assert IdentityRanker().rank(cands, 2).items.tolist() == [[0, 2]]

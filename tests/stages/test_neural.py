import numpy as np
import pytest

from recsys.errors import ArtifactError, ConfigError
from recsys.metrics_ranking import ranking_metrics, recall_against
from recsys.stages.neural import DistilledRanker, MLPRanker
from recsys.stages.neural_retrieval import NeuralFullRetriever
from recsys.stages.ranking import LightGBMRanker
from recsys.stages.retrieval import FaissRetriever
from tests.stages.conftest import make_small_split, make_two_tower


@pytest.fixture(scope="module")
def valid_candidates():
    split = make_small_split()
    retriever = FaissRetriever(make_two_tower(), "Flat").fit(split.train)
    return retriever.retrieve(split.valid_users(), 50)


@pytest.fixture(scope="module")
def mlp(valid_candidates):
    split = make_small_split()
    ranker = MLPRanker(preset="small", epochs=15)
    return ranker.fit(split.train, split.valid, valid_candidates)


def ndcg(cands):
    split = make_small_split()
    truth = [split.valid.items_by_user().get(int(u), np.empty(0)) for u in cands.users]
    return ranking_metrics(cands.items, truth, split.train.n_items, k=10)["ndcg@10"]


def test_mlp_reorders_its_training_lists_better_than_retrieval(valid_candidates, mlp):
    assert mlp.name == "mlp_small"
    assert mlp.loss_history_[-1] < mlp.loss_history_[0]
    assert ndcg(mlp.rank(valid_candidates, 10)) > ndcg(valid_candidates.head(10))


def test_onnx_matches_torch_and_int8_stays_close(valid_candidates, mlp, tmp_path):
    mlp.save(tmp_path)
    native = mlp.score(valid_candidates)
    onnx = MLPRanker.load(tmp_path, backend="onnx")
    np.testing.assert_allclose(onnx.score(valid_candidates), native, rtol=1e-4, atol=1e-4)
    int8 = MLPRanker.load(tmp_path, backend="int8")
    assert int8.name == "mlp_small_int8"
    top_native = mlp.rank(valid_candidates, 10).items
    top_int8 = int8.rank(valid_candidates, 10).items
    assert recall_against(top_int8, top_native) > 0.9


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_save_restore_round_trip_and_corrupt_weights(valid_candidates, mlp, tmp_path):
    mlp.save(tmp_path)
    loaded = MLPRanker.load(tmp_path)
    np.testing.assert_array_equal(loaded.score(valid_candidates), mlp.score(valid_candidates))
    (tmp_path / "model.pt").write_bytes(b"\x80\x04not a state dict")
    with pytest.raises(ArtifactError, match="cannot load MLP ranker"):
        MLPRanker.load(tmp_path)


def test_distilled_student_follows_its_teacher(valid_candidates):
    split = make_small_split()
    teacher = LightGBMRanker(n_estimators=30, num_leaves=7, min_child_samples=5)
    teacher.fit(split.train, split.valid, valid_candidates)
    student = DistilledRanker(teacher, fit_teacher=False, epochs=40)
    student.fit(split.train, split.valid, valid_candidates)
    assert student.name == "distilled_student"
    agree = recall_against(
        student.rank(valid_candidates, 10).items, teacher.rank(valid_candidates, 10).items
    )
    assert agree > 0.6
    assert student.get_params()["teacher"] == "lightgbm"


def test_bad_options():
    split = make_small_split()
    with pytest.raises(ConfigError, match="preset"):
        MLPRanker(preset="huge").layers()
    with pytest.raises(ConfigError, match="backend"):
        LightGBMRanker(backend="int8").fit(split.train, split.valid, None)


@pytest.fixture(scope="module")
def neural_full():
    split = make_small_split()
    return NeuralFullRetriever(hidden=(32, 16), id_dim=8, epochs=2).fit(split.train)


def test_neural_full_scores_every_item_and_skips_seen(neural_full):
    split = make_small_split()
    users = split.test_users()[:10]
    cands = neural_full.retrieve(users, 20)
    scores = neural_full.score_all(users)
    history = split.train.items_by_user()
    for row, u in enumerate(users):
        seen = history.get(int(u), np.empty(0, np.int64))
        masked = scores[row].copy()
        masked[seen] = -np.inf
        expected = np.argsort(-masked, kind="stable")[:20]
        assert set(cands.items[row]) == set(expected)
        assert not set(cands.items[row]) & set(seen)
        assert (np.diff(cands.scores[row]) <= 0).all()


def test_neural_full_save_restore(neural_full, tmp_path):
    neural_full.save(tmp_path)
    again = NeuralFullRetriever(hidden=(32, 16), id_dim=8).restore(tmp_path)
    users = np.arange(5)
    np.testing.assert_array_equal(
        again.retrieve(users, 10).items, neural_full.retrieve(users, 10).items
    )


def test_int8_keeps_first_and_last_layers_fp32_by_default(valid_candidates, mlp, tmp_path):
    import onnx

    mlp.save(tmp_path)
    int8 = MLPRanker.load(tmp_path, backend="int8")
    assert int8.int8_fp32_layers == ("first", "last")
    ops = [n.op_type for n in onnx.load_from_string(int8.onnx_.model_bytes).graph.node]
    # the small preset has two dense layers (F -> 32 -> 1): both stay float
    assert (ops.count("MatMulInteger"), ops.count("MatMul")) == (0, 2)
    last_only = MLPRanker.load(tmp_path, backend="int8")
    last_only.int8_fp32_layers = ("last",)
    last_only._prepare_backend()
    ops = [n.op_type for n in onnx.load_from_string(last_only.onnx_.model_bytes).graph.node]
    assert (ops.count("MatMulInteger"), ops.count("MatMul")) == (1, 1)
    assert last_only.get_params()["int8_fp32_layers"] == ["last"]

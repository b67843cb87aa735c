import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.pipeline import Pipeline, build_pipeline
from recsys.stages.base import Candidates
from recsys.stages.ranking import IdentityRanker, LightGBMRanker, PopularityRanker
from recsys.stages.retrieval import FaissRetriever, PopularityRetriever, hnsw
from tests.stages.conftest import make_small_split, make_two_tower

KEYS = {
    "ndcg@10",
    "recall@10",
    "hr@10",
    "mrr@10",
    "coverage",
    "retrieval_recall@k",
    "retrieval_recall_vs_exact@k",
    "k",
    "n_users",
}


def small_lgbm():
    return LightGBMRanker(n_estimators=20, num_leaves=7, min_child_samples=5)


@pytest.fixture
def small_split():
    return make_small_split()


@pytest.fixture(scope="module")
def cascade():
    retriever = hnsw(make_two_tower(), m=16, ef_search=32)
    pipe = Pipeline(retriever, k=80, rankers=[(PopularityRanker(), 40), (small_lgbm(), 20)])
    return pipe.fit(make_small_split())


def test_cascade_recommends_final_n_unseen_items(small_split, cascade):
    users = small_split.test_users()[:5]
    recs = cascade.recommend(users)
    assert recs.items.shape == (5, 10)
    history = small_split.train.items_by_user()
    for u, row in zip(users, recs.items, strict=True):
        assert not set(row) & set(history.get(int(u), []))
    assert [c.k for c in cascade.cascade(users)] == [80, 40, 20]


def test_evaluate_reports_every_metric_and_is_reproducible(small_split, cascade):
    report = cascade.evaluate(small_split)
    d = report.to_dict()
    assert set(d) == KEYS
    assert d["k"] == 80
    # users whose test items are all repeats of their history carry no signal
    assert 0 < d["n_users"] <= len(small_split.test_users())
    assert 0 < d["retrieval_recall_vs_exact@k"] <= 1
    assert d["retrieval_recall@k"] >= d["recall@10"]
    assert cascade.evaluate(small_split).to_dict() == d
    assert [s["stage"] for s in report.stages] == ["retrieval", "ranking_1", "ranking_2"]


def test_learned_pipeline_beats_popularity(small_split, cascade):
    popular = Pipeline(PopularityRetriever(), k=80, rankers=[(IdentityRanker(), 10)])
    base = popular.fit(small_split).evaluate(small_split).to_dict()
    assert cascade.evaluate(small_split).to_dict()["ndcg@10"] > base["ndcg@10"]


def test_stage_callables_run_each_stage_on_real_inputs(small_split, cascade):
    calls = cascade.stage_callables(small_split.test_users()[:20])
    assert [(c.name, c.kind, c.n_in, c.n_out) for c in calls] == [
        ("retrieval", "faiss_hnsw16", small_split.train.n_items, 80),
        ("ranking_1", "popularity", 80, 40),
        ("ranking_2", "lightgbm", 40, 20),
    ]
    rng = np.random.default_rng(0)
    users = calls[0].make_input(7, rng)
    assert calls[0].run(users).items.shape == (7, 80)
    batch = calls[2].make_input(3, rng)
    assert isinstance(batch, Candidates)
    assert batch.k == 40
    assert calls[2].run(batch).items.shape == (3, 20)
    short = calls[2].make_input(3, rng, n_candidates=25)
    assert calls[2].run(short).items.shape == (3, 20)


@pytest.mark.parametrize(
    ("k", "rankers", "final_n", "message"),
    [
        (5, [], 10, "k=5 is smaller than the final list"),
        (50, [(IdentityRanker(), 60)], 10, "keeps n=60 but gets only k=50"),
        (50, [(IdentityRanker(), 30), (IdentityRanker(), 40)], 10, "n=40 but gets only n1=30"),
        (50, [(IdentityRanker(), 5)], 10, "n=5 < final_n=10"),
        (50, [], 0, "final_n must be positive"),
    ],
)
def test_bad_stage_sizes(k, rankers, final_n, message):
    with pytest.raises(ConfigError, match=message):
        Pipeline(PopularityRetriever(), k=k, rankers=rankers, final_n=final_n)


def test_k_larger_than_catalogue_fails_at_fit(small_split):
    pipe = Pipeline(PopularityRetriever(), k=small_split.train.n_items + 1)
    with pytest.raises(ConfigError, match="exceeds the catalogue"):
        pipe.fit(small_split)


def test_build_pipeline_accepts_hydra_style_specs():
    ranker = IdentityRanker()
    retriever = FaissRetriever(make_two_tower())
    pipe = build_pipeline(retriever, [{"ranker": ranker, "n": None}], k=30, final_n=5)
    assert pipe.rankers == [(ranker, 5)]
    pipe = build_pipeline(retriever, [(ranker, 20)], k=30, final_n=5)
    assert pipe.rankers == [(ranker, 20)]
    with pytest.raises(ConfigError, match="needs a 'ranker'"):
        build_pipeline(retriever, [{"n": 3}], k=30)


def test_evaluate_per_user_ndcg_pairs_users_and_averages_to_the_metric(small_split, cascade):
    report = cascade.evaluate(small_split)
    per_user = report.per_user
    assert len(per_user["user"]) == len(per_user["ndcg@10"]) == report.n_users
    assert set(per_user["user"]) <= set(small_split.test_users())
    assert per_user["ndcg@10"].mean() == pytest.approx(report.metrics["ndcg@10"])
    other = Pipeline(cascade.retriever, k=80, final_n=10).evaluate(small_split)
    np.testing.assert_array_equal(other.per_user["user"], per_user["user"])

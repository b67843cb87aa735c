import faiss
import numpy as np
import pytest

from recsys.errors import ArtifactError, ConfigError
from recsys.metrics_ranking import recall_against
from recsys.stages.embeddings import PrecomputedEmbedding
from recsys.stages.retrieval import FaissRetriever, PopularityRetriever, hnsw, ivf, ivfpq
from tests.stages.conftest import interactions

# 2 users, 5 items in 2-d: user 0 looks along x, user 1 along y.
USERS = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
ITEMS = np.array([[5, 0], [4, 1], [3, 3], [1, 4], [0, 5]], np.float32)


def tiny_retriever(factory="Flat", **kw):
    train = interactions([(0, 0), (1, 2)], n_items=5)  # user 0 saw item 0, user 1 item 2
    return FaissRetriever(PrecomputedEmbedding(USERS, ITEMS), factory, **kw).fit(train)


def test_exact_retrieval_ranks_by_inner_product_and_skips_seen_items():
    cands = tiny_retriever().retrieve(np.array([0, 1]), 3)
    assert cands.items.tolist() == [[1, 2, 3], [4, 3, 1]]
    np.testing.assert_allclose(cands.scores, [[4, 3, 1], [5, 4, 1]])


def test_k_equal_to_catalogue_pads_seen_slots():
    cands = tiny_retriever().retrieve(np.array([0]), 5)
    assert cands.items.tolist() == [[1, 2, 3, 4, -1]]


def test_history_added_later_is_excluded():
    retriever = tiny_retriever()
    retriever.add_history(interactions([(0, 1)], n_items=5))
    retriever.seen_ = retriever.seen_  # union keeps user 0's item 0 as well
    assert retriever.retrieve(np.array([0]), 2).items.tolist() == [[2, 3]]


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        ("Foo42", {}, "unknown FAISS factory string"),
        ("IVF2,Flat", {"nprobe": 3}, "nprobe=3 must lie in"),
        ("HNSW8", {"nprobe": 2}, "not an IVF index"),
        ("IVF8,Flat", {}, "nlist=8 exceeds the 5 items"),
        ("Flat", {"ef_construction": 10}, "no HNSW graph"),
        ("IVF2,Flat", {"k_factor": 4}, "no ',RFlat' refine step"),
        ("IVF2,Flat,RFlat", {"k_factor": 0}, "k_factor must be at least 1"),
    ],
)
def test_bad_index_configs_are_config_errors(factory, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        tiny_retriever(factory, **kwargs)


def test_k_larger_than_catalogue():
    with pytest.raises(ConfigError, match="exceeds the catalogue of 5"):
        tiny_retriever().retrieve(np.array([0]), 6)


def clustered(n_items=3000, n_users=200, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dim)).astype(np.float32)
    items = centres[rng.integers(30, size=n_items)] + 0.3 * rng.standard_normal((n_items, dim))
    users = centres[rng.integers(30, size=n_users)] + 0.3 * rng.standard_normal((n_users, dim))
    return users.astype(np.float32), items.astype(np.float32)


@pytest.mark.parametrize(
    ("build", "min_recall"),
    [
        (lambda e: hnsw(e, m=32, ef_search=64), 0.95),
        (lambda e: ivf(e, nlist=32, nprobe=8), 0.9),
        (lambda e: ivfpq(e, nlist=32, m=8, nbits=6, nprobe=8), 0.5),
    ],
)
def test_ann_recall_against_exact_on_clustered_vectors(build, min_recall):
    users, items = clustered()
    train = interactions([(u, u) for u in range(len(users))], n_items=len(items))
    approx = build(PrecomputedEmbedding(users, items)).fit(train)
    assert not approx.is_exact
    ids = np.arange(len(users))
    found = approx.retrieve(ids, 50).items
    truth = approx.exact().retrieve(ids, 50).items
    assert recall_against(found, truth) >= min_recall


def test_save_load_round_trip_and_corrupt_index(tmp_path):
    retriever = tiny_retriever("HNSW8", ef_search=16)
    retriever.save(tmp_path)
    loaded = FaissRetriever.load(tmp_path)
    users = np.array([0, 1])
    assert loaded.retrieve(users, 3).items.tolist() == retriever.retrieve(users, 3).items.tolist()
    assert loaded.factory == "HNSW8"
    (tmp_path / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(ArtifactError, match="cannot load retriever"):
        FaissRetriever.load(tmp_path)


def test_popularity_retriever_returns_most_popular_unseen():
    train = interactions([(0, 2), (1, 2), (2, 2), (1, 1), (2, 1), (2, 0)], n_items=4)
    cands = PopularityRetriever().fit(train).retrieve(np.array([0, 2]), 2)
    assert cands.items.tolist() == [[1, 0], [3, -1]]


def test_hnsw_searches_biased_vectors_through_the_l2_reduction():
    users, items = clustered(dim=8)
    rng = np.random.default_rng(1)
    # a two-tower export: unit directions times a scale, plus a wide item-bias column
    users = np.hstack(
        [10 * users / np.linalg.norm(users, axis=1, keepdims=True), np.ones((200, 1))]
    )
    items = np.hstack(
        [items / np.linalg.norm(items, axis=1, keepdims=True), rng.gamma(2.0, 2.0, (3000, 1))]
    )
    train = interactions([(u, u) for u in range(len(users))], n_items=len(items))
    approx = hnsw(PrecomputedEmbedding(users, items), m=32, ef_search=128).fit(train)
    ids = np.arange(len(users))
    scores, found = approx.search(users.astype(np.float32), 50)
    np.testing.assert_allclose(
        scores, np.einsum("bd,bkd->bk", users, items[found]), rtol=1e-4, atol=1e-3
    )
    truth = approx.exact().retrieve(ids, 50).items
    assert recall_against(approx.retrieve(ids, 50).items, truth) >= 0.95


def test_ivfpq_refine_step_recovers_the_recall_the_codes_lose():
    users, items = clustered()
    train = interactions([(u, u) for u in range(len(users))], n_items=len(items))
    emb = PrecomputedEmbedding(users, items)
    ids = np.arange(len(users))
    coarse = ivfpq(emb, nlist=32, m=4, nbits=4, nprobe=8).fit(train)
    refined = ivfpq(emb, nlist=32, m=4, nbits=4, nprobe=8, refine_k_factor=8).fit(train)
    assert refined.factory.endswith(",RFlat")
    assert faiss.downcast_index(refined.index_).k_factor == 8
    truth = coarse.exact().retrieve(ids, 50).items
    base = recall_against(coarse.retrieve(ids, 50).items, truth)
    better = recall_against(refined.retrieve(ids, 50).items, truth)
    assert base < 0.8
    assert better >= 0.95

import numpy as np
import pytest

from recsys import cache as cache_module
from recsys.cache import ArtifactCache, data_fingerprint, default_root, stable_hash
from recsys.errors import ArtifactError
from recsys.pipeline import Pipeline
from recsys.stages.embeddings import TwoTower
from recsys.stages.ranking import LightGBMRanker
from recsys.stages.retrieval import PopularityRetriever, hnsw
from tests.stages.conftest import interactions, make_small_split


def test_stable_hash_ignores_key_order_and_sees_values():
    assert stable_hash({"a": 1, "b": (2, 3)}) == stable_hash({"b": [2, 3], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert stable_hash({"x": np.int64(3)}) == stable_hash({"x": 3})


def test_data_fingerprint_changes_with_any_row():
    a = interactions([(0, 1), (1, 2)])
    b = interactions([(0, 1), (1, 0)], n_items=3)
    assert data_fingerprint(a) == data_fingerprint(interactions([(0, 1), (1, 2)]))
    assert data_fingerprint(a) != data_fingerprint(b)


def test_default_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("RECSYS_CACHE_DIR")
    assert default_root().parts[-2:] == (".cache", "recsys")


def test_get_or_build_builds_once_then_reads(tmp_path):
    cache = ArtifactCache(tmp_path)
    key = cache.key({"model": "x", "dim": 4}, "data0")
    calls = []

    def build():
        calls.append(1)
        return np.arange(4)

    def write(value, path):
        np.save(path / "v.npy", value, allow_pickle=False)

    def read(path):
        return np.load(path / "v.npy", allow_pickle=False)

    first, hit1 = cache.get_or_build(key, build, write, read)
    second, hit2 = cache.get_or_build(key, build, write, read)
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    np.testing.assert_array_equal(first, second)


def test_failed_build_leaves_nothing_behind(tmp_path):
    cache = ArtifactCache(tmp_path)

    def write(path):
        (path / "half.txt").write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.save("k1", write)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_or_missing_artifact_is_an_artifact_error(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.save("k1", lambda p: (p / "model.txt").write_text("trees"))
    assert cache.load("k1", lambda p: (p / "model.txt").read_text()) == "trees"
    (tmp_path / "k1" / "model.txt").write_text("trees, tampered")
    with pytest.raises(ArtifactError, match="corrupt"):
        cache.load("k1", lambda p: None)
    (tmp_path / "k1" / "model.txt").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        cache.load("k1", lambda p: None)
    with pytest.raises(ArtifactError, match="no valid manifest"):
        cache.load("nope", lambda p: None)


def test_pipeline_trains_each_stage_once_across_a_sweep(tmp_path):
    split = make_small_split()
    cache = ArtifactCache(tmp_path)

    def pipeline(ef_search):
        emb = TwoTower(dim=8, epochs=2, batch_size=256, n_negatives=32, seed=0)
        ranker = LightGBMRanker(n_estimators=10, num_leaves=7, min_child_samples=5)
        return Pipeline(hnsw(emb, m=16, ef_search=ef_search), k=40, rankers=[(ranker, 10)])

    first = pipeline(32).fit(split, cache=cache)
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 3  # embedding, index, ranker
    second = pipeline(32).fit(split, cache=cache)
    assert sorted(p.name for p in tmp_path.iterdir()) == entries  # nothing trained again
    assert not hasattr(second.retriever.embedding, "loss_history_")  # restored, not trained
    # a search-time knob reuses the index but retrains the ranker on the new candidates
    third = pipeline(48).fit(split, cache=cache)
    assert len(list(tmp_path.iterdir())) == 4
    assert third.retriever.index_.hnsw.efSearch == 48
    users = split.test_users()[:20]
    np.testing.assert_array_equal(
        first.rankers[0][0].score(first.retriever.retrieve(users, 40)),
        second.rankers[0][0].score(first.retriever.retrieve(users, 40)),
    )


def test_key_carries_the_artifact_version():
    config = {"model": "x", "dim": 4}
    key = ArtifactCache.key(config, "data0")
    assert ArtifactCache.key(config, "data0", version=cache_module.ARTIFACT_VERSION) == key
    assert ArtifactCache.key(config, "data0", version=cache_module.ARTIFACT_VERSION + 1) != key


def test_bumping_the_artifact_version_retrains_a_cached_stage(monkeypatch, tmp_path):
    split = make_small_split()
    cache = ArtifactCache(tmp_path)

    def fit() -> None:
        ranker = LightGBMRanker(n_estimators=5, num_leaves=7, min_child_samples=5)
        Pipeline(PopularityRetriever(), k=40, rankers=[(ranker, 10)]).fit(split, cache=cache)

    fit()
    entries = set(tmp_path.iterdir())
    fit()
    assert set(tmp_path.iterdir()) == entries  # same version: restored
    monkeypatch.setattr(cache_module, "ARTIFACT_VERSION", cache_module.ARTIFACT_VERSION + 1)
    fit()
    assert len(set(tmp_path.iterdir()) - entries) == 1  # the ranker is trained and stored again

"""Every retrieval, ranking and pipeline option composes and instantiates; one cascade runs."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from recsys.pipeline import Pipeline, build_pipeline
from tests.stages.conftest import make_small_split

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("retrieval", "ranking", "pipeline")


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory):
    """A primary config with only the stage groups, searching the repository's conf/."""
    root = tmp_path_factory.mktemp("conf")
    (root / "stages.yaml").write_text(
        "defaults:\n  - retrieval: hnsw\n  - ranking: lightgbm\n  - pipeline: two_stage\n"
        f"  - _self_\nhydra:\n  searchpath:\n    - file://{CONF}\n"
        "seed: 0\nk: 200\nfinal_n: 10\n"
    )
    return root


def compose_with(config_dir, overrides):
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose("stages", overrides=overrides)


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_instantiates(config_dir, group, option):
    cfg = compose_with(config_dir, [f"{group}={option}"])
    retriever = instantiate(cfg.retrieval)
    specs = [{"ranker": instantiate(r.ranker), "n": r.n} for r in cfg.pipeline.rankers]
    pipe = build_pipeline(retriever, specs, k=cfg.k, final_n=cfg.final_n)
    assert isinstance(pipe, Pipeline)
    for stage in [retriever, *(s["ranker"] for s in specs)]:
        assert stage.name


@pytest.mark.filterwarnings("ignore")
def test_a_cascade_from_config_runs_end_to_end(config_dir):
    overrides = [
        "pipeline=cascade",
        "k=60",
        "pipeline.pre_n=30",
        "ranking=mlp_int8",
        "ranking.epochs=3",
        "retrieval.embedding.dim=8",
        "retrieval.embedding.epochs=2",
        "ranking@pipeline.pre_ranker=popularity",
    ]
    cfg = compose_with(config_dir, overrides)
    specs = [{"ranker": instantiate(r.ranker), "n": r.n} for r in cfg.pipeline.rankers]
    pipe = build_pipeline(instantiate(cfg.retrieval), specs, k=cfg.k, final_n=cfg.final_n)
    split = make_small_split()
    report = pipe.fit(split).evaluate(split).to_dict()
    assert [s["kind"] for s in pipe.describe()] == ["faiss_hnsw32", "popularity", "mlp_large_int8"]
    assert [s["n"] for s in pipe.describe()] == [60, 30, 10]
    assert 0 < report["ndcg@10"] <= 1

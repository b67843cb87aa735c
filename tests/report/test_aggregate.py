"""Collecting runs: exact rows, failed/incomplete runs listed with reasons, clear errors."""

import json
import math

import pytest

from recsys.errors import ConfigError, DataError
from recsys.report.aggregate import COLUMNS, collect_runs, pairing_label
from tests.report.factory import BASELINE, HNSW, faiss, make_sweep, result_doc, write_run


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path)


def test_rows_are_exact_and_in_natural_order(sweep):
    runs = collect_runs([sweep])
    assert [r.name for r in runs] == ["0", "1", "2", "3"]
    assert runs.get("1").row == {
        "run": "1",
        "label": "faiss[HNSW32 ef_search=64] + lightgbm",
        "retrieval": "faiss_hnsw32",
        "retrieval_params": "factory=HNSW32, ef_search=64, ef_construction=40, metric=ip",
        "rankers": "lightgbm",
        "dataset": "synthetic",
        "ndcg@10": 0.318,
        "recall@10": 0.12,
        "retrieval_recall@k": 0.95,
        "k": 200.0,
        "peak_qps": 100.0,
        "p50_ms": 15.0,
        "p95_ms": 42.0,
        "p99_ms": 60.0,
        "p999_ms": 90.0,
        "replicas": "retrieval=1, ranking=2",
        "total_replicas": 3,
        "per_1k_requests_usd": pytest.approx(3 / 360),
        "monthly_usd": 2190.0,
        "tco_monthly_usd": 4690.0,
        "sla_p99_ms": 100.0,
        "sla_met": True,
        "dropped": 0,
        "run_dir": str(sweep / "1"),
        "replicas_retrieval": 1,
        "replicas_ranking": 2,
    }
    frame = runs.to_frame()
    assert list(frame.columns) == [*COLUMNS, "replicas_retrieval", "replicas_ranking"]
    assert list(frame["label"]) == [
        "faiss[Flat] + neural_full",
        "faiss[HNSW32 ef_search=64] + lightgbm",
        "faiss[HNSW32 ef_search=16] + lightgbm",
        "faiss[IVF256,Flat nprobe=8] + lightgbm",
    ]
    assert list(frame["total_replicas"]) == [10, 3, 2, 2]


def test_corrupt_and_unfinished_runs_are_listed_not_tabled(sweep):
    runs = collect_runs([sweep])
    assert [(f.name, f.reason) for f in runs.failed] == [
        ("4", "result.json unusable: not valid JSON (Expecting ':' delimiter at line 1)"),
        (
            "5",
            "no result.json: the run did not finish (or is still running); see its .log file",
        ),
    ]
    assert [f.dir for f in runs.failed] == [sweep / "4", sweep / "5"]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.pop("cost"), "result lacks required key(s): ['cost']"),
        (lambda r: r["quality"].pop("ndcg@10"), "result.json lacks quality.ndcg@10"),
        (
            lambda r: r["latency_ms"].update(p99="slow"),
            "result.json latency_ms.p99 is not a number: 'slow'",
        ),
        (lambda r: r.update(schema_version=2), "unsupported schema_version 2"),
        (lambda r: r.update(pipeline=[]), "pipeline must be a non-empty list"),
        (
            lambda r: r["stages"][0].pop("replicas"),
            "stages must be a list of {name, replicas, ...}",
        ),
        (lambda r: r["sla"].update(met="yes"), "sla.met must be true or false, got 'yes'"),
    ],
)
def test_incomplete_results_are_failed_with_the_reason(tmp_path, mutate, reason):
    result = result_doc()
    mutate(result)
    write_run(tmp_path / "run", result)
    runs = collect_runs([tmp_path / "run"])
    assert len(runs) == 0
    assert [f.name for f in runs.failed] == ["run"]
    assert reason in runs.failed[0].reason


def test_missing_optional_values_become_nan_not_errors(tmp_path):
    result = result_doc()
    del result["quality"]["recall@10"]
    result["latency_ms"]["p999"] = None
    write_run(tmp_path / "run", result, hydra=False)
    row = collect_runs([tmp_path / "run" / "result.json"]).runs[0].row
    assert math.isnan(row["recall@10"])
    assert math.isnan(row["p999_ms"])
    assert row["run"] == "run"


def test_nonexistent_or_empty_directories_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="nope: no such directory"):
        collect_runs([tmp_path / "nope"])
    with pytest.raises(DataError, match=r"no result\.json found below"):
        collect_runs([tmp_path])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        collect_runs([tmp_path / "notes.txt"])
    with pytest.raises(DataError, match="no run directories"):
        collect_runs([])


def test_overlapping_directories_count_each_run_once(sweep):
    runs = collect_runs([sweep, sweep / "1", sweep.parent])
    assert len(runs) == 4
    assert len(runs.failed) == 2


def test_pairing_labels():
    describe = result_doc(**BASELINE)["pipeline"]
    assert pairing_label(describe) == "faiss[Flat] + neural_full"
    pop = [{"stage": "retrieval", "kind": "popularity", "params": {}, "n": 50}]
    assert pairing_label(pop) == "popularity"
    cascade = result_doc(rankers=("lightgbm", "neural_full"), replicas=(1, 1, 2))["pipeline"]
    assert pairing_label(cascade) == "faiss[HNSW32 ef_search=64] + lightgbm + neural_full"
    ivf = result_doc(retrieval=faiss("OPQ16,IVF1024,PQ16x8", nprobe=32))["pipeline"]
    assert pairing_label(ivf) == "faiss[OPQ16,IVF1024,PQ16x8 nprobe=32] + lightgbm"


def test_baseline_selectors(sweep):
    runs = collect_runs([sweep])
    assert runs.find({"pipeline_contains": "neural_full"}).name == "0"
    assert runs.find("3").name == "3"
    assert runs.find("10-00-00/2").name == "2"
    assert runs.find("faiss[Flat] + neural_full").name == "0"
    assert runs.find({"pipeline_contains": "lightgbm", "run": "1"}).name == "1"
    with pytest.raises(ConfigError, match=r"matches 3 runs \(1, 2, 3\)"):
        runs.find({"pipeline_contains": "lightgbm"})
    with pytest.raises(ConfigError, match="matches no usable run; runs: 0"):
        runs.find({"pipeline_contains": "two_tower_xl"})
    with pytest.raises(ConfigError, match="baseline selector"):
        runs.find({"kind": "x"})


def test_a_result_json_that_is_not_an_object(tmp_path):
    run = write_run(tmp_path / "run", None)
    (run / "result.json").write_text(json.dumps([1, 2]))
    runs = collect_runs([tmp_path])
    assert runs.failed[0].reason.endswith("expected a JSON object")
    assert HNSW["ndcg"] == 0.318  # the factory's documented numbers stay what tests assume


def test_runs_that_share_a_label_but_not_their_parameters_get_them_in_the_label(tmp_path):
    big, small, again = result_doc(), result_doc(), result_doc(qps=500.0)
    big["pipeline"][1]["params"] = {"n_estimators": 300, "num_leaves": 31, "seed": 0}
    small["pipeline"][1]["params"] = {"n_estimators": 50, "num_leaves": 15, "seed": 0}
    again["pipeline"][1]["params"] = dict(big["pipeline"][1]["params"])
    for name, doc in (("0", big), ("1", small), ("2", again)):
        write_run(tmp_path / name, doc)
    labels = [r.label for r in collect_runs([tmp_path])]
    base = "faiss[HNSW32 ef_search=64] + lightgbm"
    # Only the differing parameters, and the same label for the same configuration
    # at another traffic level.
    assert labels == [
        f"{base} (lightgbm: n_estimators=300, num_leaves=31)",
        f"{base} (lightgbm: n_estimators=50, num_leaves=15)",
        f"{base} (lightgbm: n_estimators=300, num_leaves=31)",
    ]

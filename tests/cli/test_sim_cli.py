"""``recsys-sim`` end to end: the smoke experiment, MovieLens, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from recsys.result import REQUIRED_KEYS, read_result

SHARED = Path(
    os.environ.get("RECSYS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)


def test_smoke_experiment_writes_a_complete_result(sim_cli, tmp_path):
    proc = sim_cli("experiment=smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    result = read_result(out / "result.json")  # validates the contract
    assert set(REQUIRED_KEYS) <= set(result)
    assert [p["stage"] for p in result["pipeline"]] == ["retrieval", "ranking"]
    assert result["quality"]["dataset"] == "synthetic"
    assert 0 < result["quality"]["ndcg@10"] <= 1
    assert result["traffic"] == result["traffic"] | {"kind": "poisson", "peak_qps": 1000.0}
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["p999"]
    assert all(s["replicas"] >= 1 for s in result["stages"])
    assert result["cost"]["per_1k_requests_usd"] > 0
    assert result["sla"]["met"] is (
        lat["p99"] <= result["sla"]["p99_ms"] and result["dropped"] == 0
    )
    assert result["config"]["k"] == 50
    # The measured profile and per-request records sit beside result.json.
    profile = pd.read_parquet(out / "profile.parquet")
    assert set(profile["stage"]) == {"retrieval", "ranking"}
    assert sorted(profile["batch_size"].unique()) == [1, 4, 16]
    records = pd.read_parquet(out / "records.parquet")
    assert len(records) == result["traffic"]["requests"]
    assert "SLA p99" in (out / "report.md").read_text()
    assert "NDCG@10" in proc.stdout


def test_same_seed_same_result(sim_cli, tmp_path):
    """Everything but timings is deterministic: quality depends only on the seed."""
    first = sim_cli("experiment=smoke", "sim.replicas=2", "write_records=false")
    assert first.returncode == 0, first.stderr[-2000:]
    a = json.loads((tmp_path / "out" / "result.json").read_text())
    second = sim_cli("experiment=smoke", "sim.replicas=2", "write_records=false")
    assert second.returncode == 0, second.stderr[-2000:]
    b = json.loads((tmp_path / "out" / "result.json").read_text())
    assert a["quality"] == b["quality"]
    assert a["traffic"]["requests"] == b["traffic"]["requests"]


@pytest.mark.skipif(
    not (SHARED / "ml-latest-small").is_dir(), reason="../shared/data/ml-latest-small absent"
)
def test_movielens_runs(sim_cli, tmp_path):
    proc = sim_cli(
        "experiment=smoke",
        "data=movielens",
        f"data.path={SHARED / 'ml-latest-small'}",
        "retrieval.embedding.epochs=3",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_result(tmp_path / "out" / "result.json")
    assert result["quality"]["dataset"] == "movielens"
    assert result["config"]["split"]["mode"] == "per_user"
    assert result["quality"]["n_users"] == 300  # eval_users sampled from 600+ test users


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retrieval=no_such_index"], "no_such_index"),
        (["traffic.peak_qps=0"], "traffic.peak_qps must be positive"),
        (["traffic.peak_qps=-5"], "traffic.peak_qps must be positive"),
        (["sim.replicas=0"], "replicas"),
        (["k=0"], "k must be positive"),
        (["k=5"], "final_n"),
        (["k=100000"], "exceeds the catalogue"),
        (["data=tabular", "data.path=missing.csv"], "missing.csv"),
        (["sla.p99_ms=0"], "sla.p99_ms must be positive"),
    ],
)
def test_bad_input_gives_one_line_and_no_result(sim_cli, tmp_path, args, message):
    proc = sim_cli("experiment=smoke", *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "result.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("user,item\n1,2\n", "timestamp"),
        ("user,item,timestamp\n1,2,yesterday-ish\n", "timestamp"),
        ("user,item,timestamp\n,2,100\n", "user"),
    ],
)
def test_malformed_interactions_file(sim_cli, tmp_path, content, message):
    path = tmp_path / "interactions.csv"
    path.write_text(content)
    proc = sim_cli("experiment=smoke", "data=tabular", f"data.path={path}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("recsys: error:")]
    assert len(error_lines) == 1
    assert message in error_lines[0]
    assert "Traceback" not in proc.stderr

"""result.json: the contract's keys, atomic writes, clear errors on corrupt files."""

import json

import numpy as np
import pytest

from recsys.result import REQUIRED_KEYS, read_result, write_result


def minimal_result():
    return {
        "schema_version": 1,
        "run": {"seed": 0},
        "pipeline": [{"stage": "retrieval", "kind": "faiss", "params": {}}],
        "quality": {"dataset": "synthetic", "ndcg@10": np.float32(0.25)},
        "traffic": {"kind": "poisson", "peak_qps": 100, "requests": 10},
        "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": float("nan"), "p999": 4.0},
        "stages": [],
        "dropped": np.int64(0),
        "cost": {"per_1k_requests_usd": 0.1, "monthly_usd": 1.0, "tco_monthly_usd": 2.0},
        "sla": {"p99_ms": 100, "met": True},
        "config": {},
    }


def test_round_trip_converts_numpy_and_nan(tmp_path):
    path = tmp_path / "result.json"
    write_result(path, minimal_result())
    data = read_result(path)
    assert set(REQUIRED_KEYS) <= set(data)
    assert data["dropped"] == 0
    assert data["quality"]["ndcg@10"] == pytest.approx(0.25)
    assert data["latency_ms"]["p99"] is None  # JSON has no NaN
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_incomplete_result_is_refused_and_nothing_written(tmp_path):
    bad = minimal_result()
    del bad["cost"]
    with pytest.raises(ValueError, match="cost"):
        write_result(tmp_path / "result.json", bad)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"schema_version": 1,')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_result(path)
    path.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(ValueError, match="lacks required key"):
        read_result(path)

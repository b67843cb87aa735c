"""What a run hands back: summary dict, records, time series, reproducibility."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys.sim.engine import StageSpec, simulate
from recsys.sim.hardware import Hardware
from recsys.sim.service import Deterministic, Exponential, LogNormal
from recsys.sim.workload import Poisson


def _pipeline():
    return [
        StageSpec("retrieval", Exponential(2.0), replicas=2, max_batch=4, max_wait_ms=1.0,
                  hardware=Hardware("c7i.large", vcpu=2, price_per_hour_usd=0.08925)),
        StageSpec("ranking", LogNormal(6.0, 0.5, per_item_ms=0.5), replicas=3, max_batch=8,
                  max_wait_ms=2.0, network_ms=0.5),
    ]  # fmt: skip


def _arrivals(n=30_000, seed=0):
    return Poisson(500.0).arrivals(np.random.default_rng(seed), n_requests=n)


def test_same_seed_same_results_and_another_seed_differs():
    a = simulate(_arrivals(), _pipeline(), seed=11, warmup_s=2.0)
    b = simulate(_arrivals(), _pipeline(), seed=11, warmup_s=2.0)
    c = simulate(_arrivals(), _pipeline(), seed=12, warmup_s=2.0)
    pd.testing.assert_frame_equal(a.records, b.records)
    assert a.to_dict() == b.to_dict()
    assert a.latency_ms["p99"] != c.latency_ms["p99"]


def test_stage_streams_are_independent():
    # Changing the ranking stage leaves retrieval's service draws untouched (common random
    # numbers across what-if configurations).
    base = simulate(_arrivals(), _pipeline(), seed=1).records
    other = _pipeline()
    other[1] = StageSpec("ranking", Deterministic(3.0), replicas=5)
    changed = simulate(_arrivals(), other, seed=1).records
    pd.testing.assert_series_equal(base["retrieval_service_ms"], changed["retrieval_service_ms"])


def test_summary_is_json_ready_and_has_the_result_keys():
    result = simulate(_arrivals(), _pipeline(), seed=0, warmup_s=2.0)
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert {"latency_ms", "stages", "dropped", "completed", "unstable"} <= set(doc)
    lat = doc["latency_ms"]
    for key in ("p50", "p90", "p95", "p99", "p999"):
        assert (
            lat[f"{key}_ci_low"] is None
            or lat[f"{key}_ci_low"] <= lat[key] <= lat[f"{key}_ci_high"]
        )
    assert lat["p50"] < lat["p99"] < lat["p999"]
    retrieval, ranking = doc["stages"]
    assert retrieval["hardware"] == "c7i.large"
    assert ranking["hardware"] is None
    assert 0 < retrieval["utilization"] < 1
    assert retrieval["mean_batch"] >= 1
    assert doc["sim"]["ci_method"] == "batch_means"
    assert doc["requests"]["measured"] + doc["requests"]["warmup"] == 30_000


def test_records_parquet_round_trip(tmp_path):
    result = simulate(_arrivals(2000), _pipeline(), seed=0)
    path = result.write_records(tmp_path / "records.parquet")
    back = pd.read_parquet(path)
    assert len(back) == 2000
    assert set(back["outcome"].astype(str)) == {"ok"}
    assert np.allclose(back["e2e_ms"], result.records["e2e_ms"])
    assert {"retrieval_wait_ms", "ranking_batch_size", "ranking_service_ms"} <= set(back)


def test_e2e_is_the_sum_of_its_parts():
    rec = simulate(_arrivals(5000), _pipeline(), seed=0).records
    parts = rec["retrieval_wait_ms"] + rec["retrieval_service_ms"] + 0.5
    parts += rec["ranking_wait_ms"] + rec["ranking_service_ms"]
    assert np.allclose(rec["e2e_ms"], parts)


def test_timeseries_per_minute():
    arrivals = _arrivals(70_000)  # about 140 s
    result = simulate(arrivals, _pipeline(), seed=0, record=False)
    ts = result.timeseries
    assert result.records is None
    assert ts["t_s"].tolist() == [0.0, 60.0, 120.0]
    assert ts["arrivals"].sum() == 70_000
    assert ts["qps"].iloc[0] == pytest.approx(500.0, rel=0.05)
    assert ts["complete"].tolist() == [True, True, False]
    assert (ts["ranking_replicas"] == 3).all()
    assert {"p99_ms", "p50_ms", "retrieval_queue_max", "ok", "timeout", "shed"} <= set(ts)


def test_sla_attainment_counts_drops_as_misses():
    # Deterministic: two requests take 1 s, one waits 0.5 s more, the fourth is shed.
    stage = StageSpec("s", Deterministic(1000.0), queue_capacity=1)
    result = simulate([0.0, 0.5, 0.6, 3.0], [stage])
    assert result.dropped == 1
    assert result.sla_attainment(1000.0) == pytest.approx(2 / 4)
    assert result.sla_attainment(1500.0) == pytest.approx(3 / 4)
    assert not result.meets_sla(10_000.0)


def test_warmup_is_left_out():
    arrivals = _arrivals(10_000)
    result = simulate(arrivals, _pipeline(), warmup_s=float(arrivals[1000]))
    assert result.requests == {"arrived": 10_000, "measured": 9000, "warmup": 1000}
    assert result.latency_ms["n"] == 9000
    assert result.timeseries["warmup"].dtype == bool


def test_progress_bar_does_not_change_results(capsys):
    quiet = simulate(_arrivals(20_000), _pipeline(), seed=3, progress=False)
    shown = simulate(_arrivals(20_000), _pipeline(), seed=3, progress=True)
    assert quiet.to_dict() == shown.to_dict()

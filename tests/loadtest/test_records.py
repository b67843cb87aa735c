"""The load test writes the simulator's per-request record format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import DataError
from recsys.loadtest.compare import latencies_ms
from recsys.loadtest.run import LoadTestLimits, from_detailed, run_loadtest
from recsys.loadtest.server import LiveStage
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic
from tests.loadtest.conftest import sleeper


def test_records_have_the_simulators_columns_and_types():
    arrivals = 0.01 + np.arange(30) * 0.004
    stages = [LiveStage("retrieval", sleeper(1.0)), LiveStage("ranking", sleeper(2.0), max_batch=4)]
    real = run_loadtest(arrivals, stages, list(range(30)), limits=LoadTestLimits(max_lag_ms=1e3))
    specs = [
        StageSpec("retrieval", Deterministic(1.0)),
        StageSpec("ranking", Deterministic(2.0), max_batch=4),
    ]
    sim = simulate(arrivals, specs).records
    assert list(real.records.columns) == list(sim.columns)
    assert dict(real.records.dtypes) == dict(sim.dtypes)
    rec = real.records
    # Consistent timestamps: arrival <= enqueue <= start, service > 0, e2e = done - arrival.
    for s in ("retrieval", "ranking"):
        assert (rec[f"{s}_enqueue_s"] >= rec["arrival_s"]).all()
        assert (rec[f"{s}_start_s"] >= rec[f"{s}_enqueue_s"]).all()
        assert (rec[f"{s}_service_ms"] > 0).all()
        wait = (rec[f"{s}_start_s"] - rec[f"{s}_enqueue_s"]) * 1000
        np.testing.assert_allclose(rec[f"{s}_wait_ms"], wait)
    np.testing.assert_allclose(rec["e2e_ms"], (rec["done_s"] - rec["arrival_s"]) * 1000)
    lat = latencies_ms(rec, ["retrieval", "ranking"], warmup_s=0.0)
    assert set(lat) == {"retrieval", "ranking", "end_to_end"}
    assert lat["end_to_end"].size == 30


def test_detailed_records_round_trip_for_offline_analysis(tmp_path):
    arrivals = 0.01 + np.arange(20) * 0.004
    stages = [LiveStage("retrieval", sleeper(1.0)), LiveStage("ranking", sleeper(1.0))]
    real = run_loadtest(arrivals, stages, list(range(20)), limits=LoadTestLimits(max_lag_ms=1e3))
    probe = np.arange(20) % 2 == 1
    path = tmp_path / "records.parquet"
    real.detailed_records(probe).to_parquet(path)
    frame = pd.read_parquet(path)
    assert frame["probe"].tolist() == probe.tolist()
    back = from_detailed(frame, ["retrieval", "ranking"], warmup_s=real.warmup_s)
    assert list(back.records.columns) == list(real.records.columns)
    for s in ("retrieval", "ranking"):
        np.testing.assert_allclose(back.hold_ms(s), real.hold_ms(s))
        assert back.warm[s].tolist() == real.warm[s].tolist()
        np.testing.assert_allclose(back.cpu_ms(s), real.cpu_ms(s))
    np.testing.assert_allclose(back.lateness_ms, real.lateness_ms)
    with pytest.raises(DataError, match="ranking_warm"):
        from_detailed(frame.drop(columns=["ranking_warm"]), ["retrieval", "ranking"], 0.0)

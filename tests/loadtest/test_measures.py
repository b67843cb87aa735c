"""What the live server measures beyond the simulator's records: how long a batch held its
worker, whether it started warm or cold, the ingress and hand-off delays; and how the
calibrated model turns them into simulator inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.loadtest.compare import tail_episodes
from recsys.loadtest.drift import Drift
from recsys.loadtest.model import SimModel, calibrated_model, handoff_ms, simulate_pooled
from recsys.loadtest.run import LoadTestLimits, run_loadtest
from recsys.loadtest.server import LiveStage
from recsys.sim.service import Deterministic, WarmColdServiceTime
from tests.loadtest.conftest import sleeper

RELAXED = LoadTestLimits(max_lag_ms=1000.0)


def _result():
    # 5 ms batches: request 1 arrives while request 0 is served, so its worker goes straight
    # on (warm); request 2 arrives long after, to an idle worker (cold).
    arrivals = np.array([0.01, 0.012, 0.05])
    stages = [LiveStage("a", sleeper(5.0)), LiveStage("b", sleeper(2.0))]
    return run_loadtest(arrivals, stages, [0, 1, 2], limits=RELAXED)


def test_warm_and_cold_starts_are_told_apart():
    result = _result()
    assert result.ok
    assert result.warm["a"].tolist() == [False, True, False]
    # Stage b (2 ms): request 0 leaves it at ~17 ms, request 1 reaches it at ~20 ms and
    # request 2 at ~60 ms, so each finds its worker idle: every batch of b starts cold.
    assert result.warm["b"].tolist() == [False, False, False]


def test_hold_time_covers_dispatch_service_and_hand_off():
    result = _result()
    for stage in ("a", "b"):
        service = result.records[f"{stage}_service_ms"].to_numpy()
        hold = result.hold_ms(stage)
        assert (hold >= service).all()
        np.testing.assert_allclose(result.overhead_ms(stage), hold - service)
    assert (result.ingress_ms() >= 0).all()
    gaps = handoff_ms(result.records, ["a", "b"])
    assert set(gaps) == {"b"} and gaps["b"] >= 0.0
    # Request 0 left a and joined b's queue in one step of the same thread.
    rec = result.records
    assert rec.loc[0, "b_enqueue_s"] >= rec.loc[0, "a_start_s"] + rec.loc[0, "a_service_ms"] / 1e3


def test_the_calibrated_model_is_warm_cold_with_ingress_and_hand_off():
    result = _result()
    profile = _profile()
    model, table = calibrated_model(result, profile, ["a", "b"], min_samples=1)
    assert isinstance(model.services["a"], WarmColdServiceTime)
    assert set(table["state"]) == {"warm", "cold"}
    assert model.ingress_ms is not None and model.ingress_ms.size == 3
    assert set(model.handoff_ms) == {"b"}
    # The requests left each stage before its worker was free (bookkeeping after the
    # hand-off): the median of that, per stage, and never more than the hold.
    end = result.records["a_start_s"] + result.records["a_service_ms"] / 1000.0
    after = (result.release_s["a"] - end.to_numpy()) * 1000.0
    assert model.after_ms["a"] == pytest.approx(max(float(np.median(after)), 0.0))
    assert 0.0 <= model.after_ms["b"] <= result.hold_ms("b").min()
    # Cold batches of stage a: what the server measured them to hold their worker (a 5-ms
    # sleep and the dispatch around it; a busy host may stretch one, never shorten it).
    cold = ~result.warm["a"]
    held_s = result.hold_ms("a")[cold].mean() / 1000.0
    assert model.services["a"].cold.mean_s(1) == pytest.approx(held_s, rel=1e-6)
    assert held_s >= 0.005


def test_simulated_ingress_delay_counts_in_end_to_end_latency():
    arrivals = np.arange(100) * 0.01
    stages = [LiveStage("a", sleeper(1.0))]
    plain = SimModel({"a": Deterministic(1.0)})
    delayed = SimModel({"a": Deterministic(1.0)}, ingress_ms=np.array([4.0]))
    base, _ = simulate_pooled(arrivals, stages, plain, seed=0, warmup_s=0.0, replications=2)
    late, records = simulate_pooled(arrivals, stages, delayed, seed=0, warmup_s=0.0, replications=2)
    np.testing.assert_allclose(base["end_to_end"], 1.0)
    np.testing.assert_allclose(late["end_to_end"], 5.0)
    # Stage latency is the stage's own (queue + service); the arrival is the scheduled one.
    np.testing.assert_allclose(late["a"], 1.0)
    np.testing.assert_allclose(records["arrival_s"].to_numpy(), arrivals)


def test_the_calibrated_model_keeps_the_probes_drift_when_asked():
    result = _result()
    model, _ = calibrated_model(result, _profile(), ["a", "b"], min_samples=1, drift_window_ms=20)
    assert model.drift is not None and model.drift.window_s == pytest.approx(0.02)
    assert np.all(model.drift.factors > 0)
    plain, _ = calibrated_model(result, _profile(), ["a", "b"], min_samples=1)
    assert plain.drift is None


def test_each_simulation_runs_on_a_path_of_the_drift():
    # A machine that always ran at half speed: every 1 ms batch takes 2 ms.
    arrivals = np.arange(100) * 0.01
    stages = [LiveStage("a", sleeper(1.0))]
    drift = Drift(window_s=0.1, factors=np.array([2.0]), raw_cv=0.0, cv=0.0, noise_share=1.0)
    model = SimModel({"a": Deterministic(1.0)}, drift=drift)
    lat, _ = simulate_pooled(arrivals, stages, model, seed=0, warmup_s=0.0, replications=2)
    np.testing.assert_allclose(lat["end_to_end"], 2.0)


def _profile() -> pd.DataFrame:
    rows = [
        {"stage": s, "kind": s, "batch_size": 1, "n_candidates": 0, "service_ms": ms}
        for s, ms in (("a", 5.0), ("b", 2.0))
        for _ in range(5)
    ]
    return pd.DataFrame(rows)


def test_a_tail_of_a_few_slow_spells_is_told_from_a_spread_out_one():
    # 10 000 requests 1 ms apart at 1 ms; two slow spells of 50 requests each at 20 ms.
    arrival = np.arange(10_000) * 1e-3
    e2e = np.ones(10_000)
    e2e[2000:2050] = 20.0
    e2e[7000:7050] = 20.0
    frame = pd.DataFrame({"arrival_s": arrival, "e2e_ms": e2e, "outcome": "ok"})
    spells = tail_episodes(frame, warmup_s=0.0)
    assert spells["episodes"] == 2
    assert spells["largest4_share"] == 1.0
    # The same 100 slow requests spread out evenly (one per 100 ms): 100 episodes.
    e2e = np.ones(10_000)
    e2e[::100] = 20.0
    spread = tail_episodes(frame.assign(e2e_ms=e2e), warmup_s=0.0)
    assert spread["episodes"] == 100
    assert spread["largest4_share"] == pytest.approx(0.04)

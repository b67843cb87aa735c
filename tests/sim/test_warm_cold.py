"""Warm/cold service times: a worker that goes straight on from its last batch serves warm, one
that sat idle serves cold. Checked against hand-computed event times and against Welch's M/G/1
queue with an exceptional first service (the cold one), the closed form for one worker."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.metrics_latency import batch_ci
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.select import choose_engine
from recsys.sim.service import (
    BatchSampler,
    Deterministic,
    Exponential,
    WarmColdServiceTime,
    state_dependent,
)
from recsys.sim.workload import Poisson


def _stage(warm_ms: float, cold_ms: float) -> StageSpec:
    model = WarmColdServiceTime(warm=Deterministic(warm_ms), cold=Deterministic(cold_ms))
    return StageSpec("s", model, network_ms=0.0)


@pytest.mark.parametrize("engine", ["simpy", "naive"])
def test_an_idle_worker_serves_cold_and_a_busy_one_goes_on_warm(engine):
    # Request 0 finds the worker idle: cold, 3 ms (done at 3). Request 1 arrived at 0.5 and
    # waits; the worker goes straight on: warm, 1 ms (done at 4). Request 2 at 10 ms finds it
    # idle again: cold (done at 13).
    arrivals = np.array([0.0, 0.0005, 0.010])
    result = simulate(arrivals, [_stage(1.0, 3.0)], engine=engine)
    rec = result.records
    np.testing.assert_allclose(rec["done_s"].to_numpy() * 1000, [3.0, 4.0, 13.0])
    np.testing.assert_allclose(rec["s_service_ms"].to_numpy(), [3.0, 1.0, 3.0])


def test_the_compiled_engine_leaves_warm_cold_models_to_simpy():
    stages = [_stage(1.0, 2.0)]
    assert choose_engine(stages, engine="auto") == "simpy"
    with pytest.raises(ConfigError, match="warm/cold"):
        choose_engine(stages, engine="fast")
    assert state_dependent(stages[0].service)
    assert not state_dependent(Deterministic(1.0))


def test_stateless_models_draw_as_before():
    # A stateless model keeps one stream per batch size whatever the state passed in.
    a = BatchSampler(Exponential(1.0), np.random.default_rng(3))
    b = BatchSampler(Exponential(1.0), np.random.default_rng(3))
    assert [a(1) for _ in range(5)] == [b(1, warm=True) for _ in range(5)]


def test_warm_and_cold_streams_are_separate_and_reproducible():
    model = WarmColdServiceTime(warm=Exponential(1.0), cold=Exponential(5.0))
    a = BatchSampler(model, np.random.default_rng(3))
    b = BatchSampler(model, np.random.default_rng(3))
    warm_a = [a(1, warm=True) for _ in range(2000)]
    cold_b = [b(1, warm=False) for _ in range(2000)]
    assert np.mean(warm_a) == pytest.approx(0.001, rel=0.1)
    assert np.mean(cold_b) == pytest.approx(0.005, rel=0.1)
    # Drawing cold in between does not shift the warm sequence.
    c = BatchSampler(model, np.random.default_rng(3))
    mixed = []
    for _ in range(2000):
        c(1, warm=False)
        mixed.append(c(1, warm=True))
    assert mixed == warm_a


@pytest.mark.parametrize(
    ("warm", "cold", "second_moment"),
    [
        (Deterministic(1.0), Deterministic(1.5), lambda m: m * m),
        (Exponential(1.0), Exponential(2.0), lambda m: 2 * m * m),
    ],
)
def test_mean_wait_matches_welchs_exceptional_first_service(warm, cold, second_moment):
    # Welch (1964), M/G/1 where a customer finding the system empty gets service S0 (cold):
    #   W = lam E[S^2] / (2 (1 - rho)) + lam (E[S0^2] - E[S^2]) / (2 (1 - rho + lam E[S0]))
    lam = 0.5  # per ms
    m, m0 = warm.mean_s(1) * 1000, cold.mean_s(1) * 1000
    rho = lam * m
    expected = lam * second_moment(m) / (2 * (1 - rho)) + lam * (
        second_moment(m0) - second_moment(m)
    ) / (2 * (1 - rho + lam * m0))
    arrivals = Poisson(lam * 1000).arrivals(np.random.default_rng(11), n_requests=200_000)
    stage = StageSpec("s", WarmColdServiceTime(warm, cold), network_ms=0.0)
    warmup = float(arrivals[2000])
    result = simulate(arrivals, [stage], seed=4, warmup_s=warmup)
    waits = result.records.loc[result.records["arrival_s"] >= warmup, "s_wait_ms"].to_numpy()
    ci = batch_ci(waits, np.mean, n_batches=20, confidence=0.999)
    assert ci.low <= expected <= ci.high, (ci, expected)
    # The stateless model with the warm times alone would wait visibly less.
    assert lam * second_moment(m) / (2 * (1 - rho)) < ci.low


def test_simpy_and_the_reference_engine_agree_request_for_request():
    # Batching, a batch timer, two workers and a second stage: both engines must decide warm
    # or cold at the same moments, so every record matches.
    model = WarmColdServiceTime(warm=Exponential(0.8, per_item_ms=0.2), cold=Exponential(1.6))
    stages = [
        StageSpec("a", model, replicas=2, max_batch=4, max_wait_ms=0.5, network_ms=0.0),
        StageSpec("b", model, max_batch=2, network_ms=0.1),
    ]
    arrivals = Poisson(1500.0).arrivals(np.random.default_rng(2), n_requests=3000)
    simpy = simulate(arrivals, stages, seed=9, engine="simpy").records
    naive = simulate(arrivals, stages, seed=9, engine="naive").records
    cols = ["a_start_s", "a_service_ms", "a_batch_size", "b_start_s", "b_service_ms", "done_s"]
    np.testing.assert_allclose(simpy[cols].to_numpy(float), naive[cols].to_numpy(float))

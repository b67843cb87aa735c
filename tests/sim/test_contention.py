"""Co-located stages slow each other down (``StageSpec.contention``): hand-computed event
times, and a queue whose total service rate the contention makes constant (an M/M/1 chain)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.metrics_latency import batch_ci
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.select import choose_engine
from recsys.sim.service import Deterministic, Exponential
from recsys.sim.workload import Poisson


def test_batches_in_service_together_share_the_machine():
    # Stage a then b, 2 ms of work each, contention 1: two batches in service at once each
    # progress at half speed. Request 0: a alone 0-2 ms. At 2 ms it starts in b while request 1
    # starts in a: both run at half speed and end at 6 ms. Request 1 then runs b alone: 8 ms.
    stages = [StageSpec(name, Deterministic(2.0), network_ms=0.0, contention=1.0) for name in "ab"]
    result = simulate(np.array([0.0, 0.002]), stages)
    rec = result.records
    np.testing.assert_allclose(rec["a_service_ms"], [2.0, 4.0])
    np.testing.assert_allclose(rec["b_service_ms"], [4.0, 2.0])
    np.testing.assert_allclose(rec["done_s"] * 1000, [6.0, 8.0])


def test_no_contention_is_the_plain_model():
    arrivals = Poisson(500.0).arrivals(np.random.default_rng(1), n_requests=2000)
    plain = [StageSpec("a", Exponential(1.0), replicas=2, network_ms=0.0)]
    zero = [StageSpec("a", Exponential(1.0), replicas=2, network_ms=0.0, contention=0.0)]
    a = simulate(arrivals, plain, seed=3, engine="simpy").records
    b = simulate(arrivals, zero, seed=3, engine="simpy").records
    np.testing.assert_array_equal(a["done_s"].to_numpy(), b["done_s"].to_numpy())


def test_two_workers_slowed_to_one_make_an_mm1_queue():
    # Two workers, exponential service of rate mu, contention 1: with one job in service it
    # runs at mu, with two each runs at mu/2. The machine always completes work at rate mu,
    # so the number in system is the M/M/1 chain and the mean sojourn is 1 / (mu - lam).
    lam, mu = 0.6, 1.0  # per ms
    arrivals = Poisson(lam * 1000).arrivals(np.random.default_rng(7), n_requests=200_000)
    stage = StageSpec("s", Exponential(1.0 / mu), replicas=2, network_ms=0.0, contention=1.0)
    warmup = float(arrivals[2000])
    result = simulate(arrivals, [stage], seed=2, warmup_s=warmup)
    e2e = result.records.loc[result.records["arrival_s"] >= warmup, "e2e_ms"].to_numpy()
    ci = batch_ci(e2e, np.mean, n_batches=20, confidence=0.999)
    expected = 1.0 / (mu - lam)
    assert ci.low <= expected <= ci.high, (ci, expected)
    # Without contention it would be M/M/2, visibly faster.
    free = simulate(arrivals, [StageSpec("s", Exponential(1.0), replicas=2, network_ms=0.0)])
    assert free.records["e2e_ms"].mean() < 0.7 * expected


def test_contention_needs_the_simpy_engine_and_is_validated():
    stages = [StageSpec("a", Deterministic(1.0), contention=0.5)]
    assert choose_engine(stages, engine="auto") == "simpy"
    with pytest.raises(ConfigError, match="contention"):
        choose_engine(stages, engine="fast")
    with pytest.raises(ConfigError, match="contention"):
        choose_engine(stages, engine="naive")
    with pytest.raises(ConfigError, match="contention"):
        StageSpec("a", Deterministic(1.0), contention=-1.0)

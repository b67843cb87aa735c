"""A batch's requests leave before its worker is free (``StageSpec.after_ms``): a live
server hands its results on and then does its bookkeeping; hand-computed event times."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.select import choose_engine
from recsys.sim.service import Deterministic


def test_requests_leave_before_the_worker_is_free():
    # Stages a then b, each batch holding its worker 2 ms, its requests leaving 0.5 ms
    # before. Request 0: a 0-1.5 (worker free at 2), b 1.5-3.0 (free at 3.5): done at 3.
    # Request 1 (due at 1 ms) waits for a's worker until 2, leaves a at 3.5, finds b's
    # worker just free and leaves b at 5.
    stages = [StageSpec(n, Deterministic(2.0), after_ms=0.5) for n in "ab"]
    rec = simulate(np.array([0.0, 0.001]), stages, engine="simpy").records
    np.testing.assert_allclose(rec["a_service_ms"], [1.5, 1.5])
    np.testing.assert_allclose(rec["a_wait_ms"], [0.0, 1.0])
    np.testing.assert_allclose(rec["b_enqueue_s"] * 1000, [1.5, 3.5])
    np.testing.assert_allclose(rec["done_s"] * 1000, [3.0, 5.0])


def test_the_worker_stays_busy_while_its_requests_are_gone():
    # One worker, 1 ms holds of which the last 0.4 ms after the request left, an arrival
    # every 0.8 ms: each request finds the worker 0.2 ms from free, so it waits 0.2 ms.
    arrivals = np.arange(50) * 0.0008
    stage = StageSpec("s", Deterministic(1.0), after_ms=0.4)
    result = simulate(arrivals, [stage], engine="simpy")
    waits = result.records["s_wait_ms"].to_numpy()
    np.testing.assert_allclose(waits[1:5], [0.2, 0.4, 0.6, 0.8])
    # The worker is busy the whole hold: 1 ms per 0.8 ms of arrivals is an overload.
    assert result.records["e2e_ms"].iloc[-1] > 5.0


def test_contended_batches_leave_early_too():
    # Contention 1: while two batches (or a batch and a worker's bookkeeping) are in
    # service each runs at half speed. Request 0 alone: a's work 0-1.5, it leaves; a's
    # bookkeeping (0.5) and b's work share the machine from 1.5 to 2.5, then request 1
    # starts in a: b ends at 4.5 (done), request 1 leaves a at 5.5 and b at 7.5.
    stages = [StageSpec(n, Deterministic(2.0), after_ms=0.5, contention=1.0) for n in "ab"]
    rec = simulate(np.array([0.0, 0.001]), stages, engine="simpy").records
    np.testing.assert_allclose(rec["done_s"] * 1000, [4.5, 7.5])


def test_an_after_time_longer_than_the_hold_lets_the_requests_leave_at_once():
    rec = simulate(np.array([0.0]), [StageSpec("s", Deterministic(1.0), after_ms=5.0)]).records
    assert rec["e2e_ms"].iloc[0] == pytest.approx(0.0)


def test_early_exit_needs_the_simpy_engine_and_is_validated():
    stages = [StageSpec("s", Deterministic(1.0), after_ms=0.1)]
    assert choose_engine(stages) == "simpy"
    with pytest.raises(ConfigError, match="after_ms"):
        choose_engine(stages, engine="fast")
    with pytest.raises(ConfigError, match="after_ms"):
        choose_engine(stages, engine="naive")
    with pytest.raises(ConfigError, match="after_ms must be >= 0"):
        StageSpec("s", Deterministic(1.0), after_ms=-1.0)

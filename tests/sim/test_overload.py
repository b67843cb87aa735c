"""Utilisation >= 1: the run still ends, says it is unstable, and counts what it dropped."""

import math

import numpy as np
import pytest

from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Exponential
from recsys.sim.workload import Poisson

LAM, MEAN_MS, C = 300.0, 10.0, 2  # offered load 1.5


def _arrivals(n=60_000):
    return Poisson(LAM).arrivals(np.random.default_rng(6), n_requests=n)


def test_unbounded_queue_grows_at_lambda_minus_capacity():
    arrivals = _arrivals()
    result = simulate(arrivals, [StageSpec("s", Exponential(MEAN_MS), replicas=C)], record=False)
    stage = result.stages[0]
    assert result.unstable
    assert result.instability[0].startswith("stage s: offered load")
    assert stage.offered_load == pytest.approx(1.5, rel=0.02)
    assert stage.utilization == pytest.approx(1.0, abs=1e-3)
    # With every worker busy the queue is arrivals minus departures: a random walk with
    # drift lam - c mu = 100/s and variance (lam + c mu) per second. Over a span T the
    # end-to-end slope has sd sqrt((lam + c mu) / T); the least-squares slope is tighter.
    span = arrivals[-1]
    drift = LAM - C * 1000 / MEAN_MS
    assert abs(stage.queue_growth_per_s - drift) < 5 * math.sqrt((LAM + C * 1000 / MEAN_MS) / span)
    assert result.completed == result.requests["measured"]  # slow, but nothing lost
    assert result.info.sim_end_s > 1.4 * span  # the backlog drains after the last arrival


def test_bounded_queue_sheds_the_excess():
    arrivals = _arrivals()
    stage = StageSpec("s", Exponential(MEAN_MS), replicas=C, queue_capacity=50)
    result = simulate(arrivals, [stage])
    assert result.unstable
    assert result.stages[0].max_queue <= 50
    # Servers stay saturated, so about lam - c mu of every lam arrivals are shed (1/3).
    assert result.drops["shed"] / result.requests["measured"] == pytest.approx(1 / 3, abs=0.02)
    assert result.completed + result.dropped == result.requests["measured"]
    assert result.timeseries["shed"].sum() == result.drops["shed"]


def test_timeouts_bound_the_latency_of_what_completes():
    arrivals = _arrivals(30_000)
    stage = StageSpec("s", Exponential(MEAN_MS), replicas=C, timeout_ms=100.0)
    result = simulate(arrivals, [stage])
    assert result.drops["timeout"] > 0
    assert result.unstable
    waits = result.records.loc[result.records["outcome"] == "ok", "s_wait_ms"]
    assert waits.max() <= 100.0
    timed_out = result.records[result.records["outcome"] == "timeout"]
    assert np.allclose(timed_out["s_wait_ms"], 100.0)

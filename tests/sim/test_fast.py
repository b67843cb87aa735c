"""The Kiefer-Wolfowitz fast path gives the SimPy engine's records for FIFO pipelines."""

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.fast import fifo_starts, simulate_fast, supports
from recsys.sim.service import Deterministic, Exponential, LogNormal
from recsys.sim.workload import Poisson


def test_hand_computed_two_servers():
    # Two servers, services 3, 1, 1, 1: the 3rd customer takes server 2 after customer 2.
    starts = fifo_starts(np.array([0.0, 0.0, 0.5, 0.6]), np.array([3.0, 1.0, 1.0, 1.0]), 2)
    assert starts.tolist() == [0.0, 0.0, 1.0, 2.0]


def test_same_records_as_the_simpy_engine():
    arrivals = Poisson(900.0).arrivals(np.random.default_rng(1), n_requests=20_000)
    stages = [
        StageSpec("retrieval", Exponential(2.0), replicas=3),
        StageSpec(
            "ranking", LogNormal(5.0, 0.7), replicas=3, workers_per_replica=2, network_ms=0.5
        ),
    ]
    fast = simulate_fast(arrivals, stages, seed=4, warmup_s=2.0)
    slow = simulate(arrivals, stages, seed=4, warmup_s=2.0)
    pd.testing.assert_frame_equal(fast.records, slow.records, rtol=0, atol=1e-9)
    for a, b in zip(fast.stages, slow.stages, strict=True):
        assert a.utilization == pytest.approx(b.utilization)


def test_refuses_what_it_cannot_model():
    batching = [StageSpec("s", Deterministic(1.0), max_batch=4)]
    assert not supports(batching)
    with pytest.raises(ConfigError, match="fast path"):
        simulate_fast([0.0, 1.0], batching)

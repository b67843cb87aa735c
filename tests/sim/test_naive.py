"""The three engines (SimPy callbacks, process per request, compiled) implement one model."""

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError
from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.naive import simulate_naive
from recsys.sim.service import Exponential, LogNormal
from recsys.sim.workload import Poisson


def test_same_seed_same_records_on_both_engines():
    # A busy two-stage pipeline exercising batching, max_wait, timeouts, shedding, several
    # workers per replica and network hops. Continuous random times make exact ties
    # (where the two engines could order events differently) impossible.
    arrivals = Poisson(1800.0).arrivals(np.random.default_rng(3), n_requests=12_000)
    stages = [
        StageSpec("retrieval", Exponential(2.0), replicas=2, max_batch=4, max_wait_ms=1.0,
                  queue_capacity=4, timeout_ms=6.0),
        StageSpec("ranking", LogNormal(5.0, 0.8, per_item_ms=0.5), replicas=2,
                  workers_per_replica=2, max_batch=8, max_wait_ms=2.0, network_ms=0.5,
                  timeout_ms=4.0, queue_capacity=8),
    ]  # fmt: skip
    naive = simulate_naive(arrivals, stages, seed=5, warmup_s=1.0)
    assert naive.drops["timeout"] > 50
    assert naive.drops["shed"] > 50
    for engine in ("simpy", "fast"):
        other = simulate(arrivals, stages, seed=5, warmup_s=1.0, engine=engine)
        pd.testing.assert_frame_equal(other.records, naive.records, rtol=0, atol=1e-9)
        assert other.latency_ms == pytest.approx(naive.latency_ms, nan_ok=True)
        for a, b in zip(other.stages, naive.stages, strict=True):
            assert a.utilization == pytest.approx(b.utilization)


def test_naive_has_no_autoscaler():
    with pytest.raises(ConfigError, match="autoscaler"):
        simulate_naive([0.0, 1.0], [StageSpec("s", Exponential(1.0))], autoscaler=AutoscalerSpec())

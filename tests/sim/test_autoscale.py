"""The autoscaler: exact timing on a deterministic load, then tracking a step in traffic."""

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic, Exponential
from recsys.sim.workload import Poisson


def test_scale_up_timing_is_exact():
    # One replica kept 100% busy (a request every 0.1 s, 0.1 s each). At the first check
    # (t = 10) utilisation 1.0 against target 0.5 asks for ceil(1 * 2) = 2 replicas; the new
    # one serves after its 5 s cold start (t = 15); utilisation 0.5 then holds it at 2.
    arrivals = np.round(np.arange(0, 600) * 0.1, 9)
    spec = AutoscalerSpec(target_utilization=0.5, interval_s=10.0, cold_start_s=5.0, max_replicas=8)
    result = simulate(
        arrivals, [StageSpec("s", Deterministic(100.0))], autoscaler=spec, timeseries_bin_s=5.0
    )
    replicas = result.timeseries["s_replicas"].tolist()
    assert replicas[:3] == [1.0, 1.0, 1.0]
    assert replicas[3:] == [2.0] * (len(replicas) - 3)
    stats = result.stages[0]
    assert stats.max_replicas == 2
    # Billed replicas: 1 until t = 10, 2 (one starting) from then to the last arrival 59.9.
    assert stats.mean_replicas == pytest.approx((10 + 2 * 49.9) / 59.9)
    assert stats.replica_hours == pytest.approx((10 + 2 * 49.9) / 3600)


def _step_load(low, high, seconds, seed):
    rng = np.random.default_rng(seed)
    first = Poisson(low).arrivals(rng, duration_s=seconds)
    second = seconds + Poisson(high).arrivals(rng, duration_s=seconds)
    return np.concatenate([first, second])


def test_follows_a_traffic_step_up_and_down():
    # 40 -> 250 -> 40 QPS at 20 ms per request: the target 0.6 needs ceil(250*0.02/0.6) = 9.
    # While the backlog built during the cold starts drains, utilisation reads 1.0 and the
    # fleet overshoots; the 120 s stabilisation window then brings it back to about 9.
    up = _step_load(40.0, 250.0, 300.0, seed=1)
    down = 600.0 + Poisson(40.0).arrivals(np.random.default_rng(2), duration_s=600.0)
    arrivals = np.concatenate([up, down])
    spec = AutoscalerSpec(target_utilization=0.6, interval_s=15.0, cold_start_s=30.0,
                          scale_down_delay_s=120.0, max_replicas=20)  # fmt: skip
    result = simulate(arrivals, [StageSpec("s", Exponential(20.0))], autoscaler=spec, seed=3,
                      timeseries_bin_s=15.0)  # fmt: skip
    ts = result.timeseries.set_index("t_s")["s_replicas"]
    assert ts.loc[0.0] <= 2  # quiet start
    assert ts.loc[300.0] <= 2 < ts.loc[450.0]  # reacts within a few intervals + cold start
    assert 8 <= ts.loc[585.0] <= 11  # settled near 9 at the end of the peak
    # The peak ends at t = 600; scale-down waits for the 120 s stabilisation window.
    assert ts.loc[600.0] >= 8
    assert ts.loc[1185.0] <= 3
    assert result.stages[0].max_replicas <= 20
    assert not result.unstable
    assert result.dropped == 0


def test_only_listed_stages_scale_and_spec_is_checked():
    arrivals = Poisson(200.0).arrivals(np.random.default_rng(0), duration_s=120.0)
    stages = [StageSpec("a", Exponential(1.0)), StageSpec("b", Exponential(20.0))]
    spec = AutoscalerSpec(interval_s=10.0, cold_start_s=0.0, stages=("b",))
    result = simulate(arrivals, stages, autoscaler=spec)
    assert result.stages[0].max_replicas == 1
    assert result.stages[1].max_replicas > 1
    with pytest.raises(ConfigError, match="not in the pipeline"):
        simulate(arrivals, stages, autoscaler=AutoscalerSpec(stages=("c",)))
    for bad in (
        {"target_utilization": 0.0},
        {"min_replicas": 3, "max_replicas": 2},
        {"interval_s": 0.0},
    ):
        with pytest.raises(ConfigError):
            AutoscalerSpec(**bad)

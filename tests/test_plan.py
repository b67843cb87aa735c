"""Capacity planning on analytic service times, where the right answer is known."""

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.plan import min_stable_replicas, offered_qps, plan_replicas
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic, Exponential


def evenly_spaced(rate_qps: float, n: int) -> np.ndarray:
    return np.arange(n) / rate_qps


def test_offered_rate_and_stability_bound():
    arrivals = evenly_spaced(200.0, 1001)
    assert offered_qps(arrivals) == pytest.approx(200.0)
    # 200 QPS x 9 ms = 1.8 busy workers; at most 95% busy needs 2 replicas.
    stage = StageSpec("ranking", Deterministic(9.0))
    assert min_stable_replicas(stage, 200.0) == 2
    # Batching of up to 4 at 9 ms + 1 ms per extra item: 12 ms / 4 = 3 ms per request -> 1.
    batched = StageSpec("ranking", Deterministic(9.0, per_item_ms=1.0), max_batch=4)
    assert min_stable_replicas(batched, 200.0) == 1


def test_deterministic_queue_needs_exactly_two_replicas():
    # A request every 5 ms, each takes 9 ms: one replica falls behind without bound,
    # two alternate and nobody ever waits (p99 = 9 ms).
    arrivals = evenly_spaced(200.0, 2000)
    plan = plan_replicas([StageSpec("ranking", Deterministic(9.0))], arrivals, sla_p99_ms=15.0)
    assert plan.feasible
    assert plan.replicas == {"ranking": 2}
    assert plan.p99_ms == pytest.approx(9.0)
    # The trail shows the one-replica attempt was tried and failed.
    assert {"ranking": 1} in [t["replicas"] for t in plan.trail if not t["met"]]


def test_a_stage_slower_than_the_sla_is_infeasible_at_any_size():
    arrivals = evenly_spaced(10.0, 200)
    plan = plan_replicas(
        [StageSpec("retrieval", Deterministic(150.0))], arrivals, sla_p99_ms=100.0, max_replicas=8
    )
    assert not plan.feasible
    assert "too slow" in plan.reason
    assert plan.to_dict()["feasible"] is False


def test_two_stage_plan_is_minimal_where_it_stands():
    rng = np.random.default_rng(7)
    arrivals = np.cumsum(rng.exponential(1 / 400.0, size=20_000))
    stages = [StageSpec("retrieval", Exponential(1.0)), StageSpec("ranking", Exponential(8.0))]
    plan = plan_replicas(stages, arrivals, sla_p99_ms=40.0, seed=3)
    assert plan.feasible and plan.p99_ms <= 40.0
    # Ranking carries 8x the work, so it gets more replicas (400 QPS x 8 ms = 3.2 busy).
    assert plan.replicas["ranking"] >= 4 > plan.replicas["retrieval"]
    # Taking one replica from any stage breaks the SLA (same arrivals, same seed).
    for i, stage in enumerate(plan.stages):
        if stage.replicas == 1:
            continue
        fewer = list(plan.stages)
        fewer[i] = StageSpec(stage.name, stage.service, replicas=stage.replicas - 1)
        result = simulate(arrivals, fewer, seed=3, record=False)
        assert not result.meets_sla(40.0)


def test_bad_planner_inputs():
    stage = [StageSpec("ranking", Deterministic(1.0))]
    with pytest.raises(ConfigError, match="p99_ms must be positive"):
        plan_replicas(stage, evenly_spaced(10, 10), sla_p99_ms=0)
    with pytest.raises(ConfigError, match="at least two arrivals"):
        plan_replicas(stage, np.array([0.0]), sla_p99_ms=10)

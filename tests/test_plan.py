"""Capacity planning on analytic service times, where the right answer is known."""

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.plan import (
    HardwareOption,
    min_stable_replicas,
    offered_qps,
    plan_cheapest,
    plan_replicas,
)
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.hardware import Hardware
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


# -- the cheapest hardware from a catalogue ---------------------------------------------------


def hw(name: str, speed: float, vcpu: int, price: float) -> HardwareOption:
    return HardwareOption(Hardware(name, vcpu=vcpu, price_per_hour_usd=price, speed_factor=speed))


# 10 ms per request here. "slow": 20 ms, one worker (50 QPS) for $0.05/h; "fast": 5 ms, one
# worker (200 QPS) for $0.30/h; "wide": 10 ms on 4 workers (400 QPS) for $0.15/h.
SLOW, FAST, WIDE = hw("slow", 0.5, 1, 0.05), hw("fast", 2.0, 1, 0.30), hw("wide", 1.0, 4, 0.15)


def poisson(rate_qps: float, n: int, seed: int = 0) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).exponential(1 / rate_qps, size=n))


def test_catalogue_picks_the_cheapest_hardware_that_meets_the_sla():
    # At 400 QPS: slow needs >= 9 replicas ($0.45/h), fast >= 3 ($0.90/h), wide >= 2 ($0.30/h,
    # 8 workers half busy). Wide has the lowest bound and meets the SLA at 2; nothing else can
    # beat $0.30/h, so it is the only combination simulated.
    stage = StageSpec("ranking", Deterministic(10.0))
    result = plan_cheapest([stage], [[SLOW, FAST, WIDE]], poisson(400, 20_000), sla_p99_ms=50)
    assert result.feasible
    assert result.hardware == {"ranking": "wide"}
    assert result.plan.replicas == {"ranking": 2}
    assert result.plan.stages[0].workers_per_replica == 4
    assert result.hourly_usd == pytest.approx(0.30)
    assert [c["hardware"] for c in result.candidates] == [{"ranking": "wide"}]


def test_catalogue_skips_cheap_hardware_too_slow_for_the_sla():
    # "cheap" has the lowest price bound (9 x $0.02) but serves in 20 ms > the 15 ms SLA.
    cheap = hw("cheap", 0.5, 1, 0.02)
    stage = StageSpec("ranking", Deterministic(10.0))
    result = plan_cheapest([stage], [[cheap, FAST, WIDE]], poisson(400, 20_000), sla_p99_ms=15)
    assert result.hardware == {"ranking": "wide"}
    tried = {c["hardware"]["ranking"]: c["feasible"] for c in result.candidates}
    assert tried == {"cheap": False, "wide": True}


def test_catalogue_chooses_per_stage():
    # Retrieval (1 ms; 2 ms on "slow": 400 QPS x 2 ms = 0.8 busy -> 1 replica, $0.05/h) is
    # cheapest on "slow"; ranking (10 ms) on "wide" (2 replicas, $0.30/h).
    stages = [StageSpec("retrieval", Deterministic(1.0)), StageSpec("ranking", Deterministic(10.0))]
    options = [[SLOW, FAST, WIDE], [SLOW, FAST, WIDE]]
    result = plan_cheapest(stages, options, poisson(400, 20_000), sla_p99_ms=50)
    assert result.hardware == {"retrieval": "slow", "ranking": "wide"}
    assert result.plan.replicas == {"retrieval": 1, "ranking": 2}
    assert result.hourly_usd == pytest.approx(0.35)


def test_a_pairing_too_slow_on_every_option_is_marked_infeasible():
    stage = StageSpec("retrieval", Deterministic(500.0))  # 250 ms even on "fast"
    result = plan_cheapest(
        [stage], [[SLOW, FAST, WIDE]], poisson(20, 2_000), sla_p99_ms=100, max_replicas=8
    )
    assert not result.feasible
    assert "infeasible" in result.reason and "fastest hardware" in result.reason
    assert result.to_dict()["feasible"] is False
    assert result.hardware == {}


def test_catalogue_needs_options_for_every_stage():
    stage = StageSpec("ranking", Deterministic(1.0))
    with pytest.raises(ConfigError, match="at least one hardware option"):
        plan_cheapest([stage], [[]], poisson(10, 100), sla_p99_ms=10)
    with pytest.raises(ConfigError, match="workers_per_replica"):
        HardwareOption(SLOW.hardware, workers_per_replica=0)

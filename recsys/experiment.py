"""One run of the redesign question, as plain steps over typed objects.

``recsys-sim`` (the Hydra entry point) instantiates the configured objects and calls these
steps in order: split -> fit -> evaluate -> profile -> simulate (planning replicas if asked)
-> price -> assemble ``result.json``. Nothing here reads a config or touches the console.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.cost import CostAssumptions, CostReport, StageFleet, fleet_cost
from recsys.data.interactions import Interactions
from recsys.data.split import Split, time_split
from recsys.errors import ConfigError
from recsys.pipeline import Pipeline, QualityReport
from recsys.plan import PlanResult, plan_replicas
from recsys.profile.timing import profile_stages
from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.engine import SimResult, StageSpec, simulate
from recsys.sim.hardware import Hardware
from recsys.sim.service import EmpiricalServiceTime, ServiceTimeModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingOptions:
    """How one stage's replicas serve: workers, dynamic batching, queue bound, timeout."""

    workers_per_replica: int = 1
    max_batch: int = 1
    max_wait_ms: float = 0.0
    queue_capacity: int | None = None
    timeout_ms: float | None = None
    network_ms: float = 0.0


@dataclass(frozen=True)
class ProfileOptions:
    """Which batch sizes to time, how often, and on how many real users' inputs."""

    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    repeats: int = 40
    warmup: int = 3
    sample_users: int = 512


def split_data(
    data: Interactions, valid_frac: float, test_frac: float, mode: str = "global"
) -> Split:
    """Time-based train/validation/test split, logging what it removed."""
    split = time_split(data, valid_frac=valid_frac, test_frac=test_frac, mode=mode)
    log.info(
        "data %s: %d interactions, %d users, %d items; train %d / valid %d / test %d",
        data.name,
        len(data),
        data.n_users,
        data.n_items,
        len(split.train),
        len(split.valid),
        len(split.test),
    )
    return split


def sample_users(users: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A seeded, sorted sample of ``n`` of ``users`` (all when ``n`` is None or larger)."""
    users = np.asarray(users, np.int64)
    if n is None or n >= len(users):
        return users
    if n <= 0:
        raise ConfigError(f"the number of users to sample must be positive, got {n}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(users, size=n, replace=False))


def evaluate_quality(
    pipeline: Pipeline, split: Split, eval_users: int | None, seed: int
) -> QualityReport:
    """Offline metrics on (a seeded sample of) the test users."""
    users = sample_users(split.test_users(), eval_users, seed)
    return pipeline.evaluate(split, users)


def profile_pipeline(
    pipeline: Pipeline,
    split: Split,
    options: ProfileOptions,
    seed: int,
    progress: bool = True,
) -> pd.DataFrame:
    """Measured service times of every stage (one row per timed call)."""
    users = sample_users(split.test_users(), options.sample_users, seed)
    calls = pipeline.stage_callables(users)
    return profile_stages(
        calls,
        batch_sizes=options.batch_sizes,
        repeats=options.repeats,
        warmup=options.warmup,
        seed=seed,
        progress=progress,
    )


def service_models(
    profile: pd.DataFrame, stages: Sequence[str], hardware: Mapping[str, Hardware]
) -> dict[str, ServiceTimeModel]:
    """Empirical service-time model of each stage, scaled to the stage's hardware."""
    return {
        name: hardware[name].scale(EmpiricalServiceTime.from_table(profile, stage=name))
        for name in stages
    }


def stage_specs(
    services: Mapping[str, ServiceTimeModel],
    serving: Mapping[str, ServingOptions],
    hardware: Mapping[str, Hardware],
    replicas: Mapping[str, int],
) -> list[StageSpec]:
    """Simulator stage descriptions, in pipeline order."""
    return [
        StageSpec(
            name=name,
            service=model,
            replicas=int(replicas[name]),
            hardware=hardware[name],
            **dataclasses.asdict(serving[name]),
        )
        for name, model in services.items()
    ]


@dataclass(frozen=True)
class SimOptions:
    """Statistics and dynamics of the simulation run that produces the reported numbers."""

    n_batches: int = 20
    confidence: float = 0.95
    timeseries_bin_s: float = 60.0
    autoscaler: AutoscalerSpec | None = None
    engine: str = "auto"  # recsys.sim.select: auto | simpy | fast | naive (config sim.engine)

    def simulate(
        self,
        arrivals: np.ndarray,
        stages: Sequence[StageSpec],
        seed: int,
        warmup_s: float,
        progress: bool = True,
    ) -> SimResult:
        """The reported simulation of ``stages`` with these options."""
        return simulate(
            arrivals,
            stages,
            seed=seed,
            warmup_s=warmup_s,
            progress=progress,
            autoscaler=self.autoscaler,
            n_batches=self.n_batches,
            confidence=self.confidence,
            timeseries_bin_s=self.timeseries_bin_s,
            engine=self.engine,
        )


def simulate_fleet(
    specs: list[StageSpec],
    arrivals: np.ndarray,
    sla_p99_ms: float,
    seed: int,
    warmup_s: float,
    plan: bool,
    max_replicas: int = 64,
    progress: bool = True,
    options: SimOptions | None = None,
) -> tuple[list[StageSpec], SimResult, PlanResult | None]:
    """Simulate the given replica counts, or plan the fewest replicas meeting the SLA first.

    Planning sizes a fixed fleet for the traffic; an autoscaler, when given, then runs on top
    of the planned (or given) fleet as its starting size.
    """
    o = options or SimOptions()

    def final(stages: Sequence[StageSpec]) -> SimResult:
        return o.simulate(arrivals, stages, seed=seed, warmup_s=warmup_s, progress=progress)

    if not plan:
        return specs, final(specs), None
    planned = plan_replicas(
        specs,
        arrivals,
        sla_p99_ms=sla_p99_ms,
        seed=seed,
        warmup_s=warmup_s,
        max_replicas=max_replicas,
        engine="auto" if o.engine in ("auto", "naive") else o.engine,
    )
    return list(planned.stages), final(planned.stages), planned


def price_fleet(specs: Sequence[StageSpec], qps: float, assumptions: CostAssumptions) -> CostReport:
    """Cost of the simulated fleet serving ``qps`` around the clock."""
    fleet = [
        StageFleet(
            stage=s.name,
            replicas=s.replicas,
            hardware=s.hardware.name if s.hardware else "unknown",
            price_per_hour_usd=s.hardware.price_per_hour_usd if s.hardware else 0.0,
        )
        for s in specs
    ]
    return fleet_cost(fleet, qps=qps, assumptions=assumptions)


def assemble_result(
    *,
    run: Mapping[str, Any],
    pipeline: Pipeline,
    quality: QualityReport,
    dataset: str,
    traffic: Mapping[str, Any],
    sim: SimResult,
    specs: Sequence[StageSpec],
    cost: CostReport,
    sla_p99_ms: float,
    config: Mapping[str, Any],
    plan: PlanResult | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``result.json`` document (schema version 1; see ``recsys.result``)."""
    sim_dict = sim.to_dict()
    stage_stats = {s["name"]: s for s in sim_dict["stages"]}
    stages = []
    for spec in specs:
        stats = dict(stage_stats.get(spec.name, {}))
        stats.update(
            {
                "name": spec.name,
                "replicas": spec.replicas,
                "hardware": spec.hardware.name if spec.hardware else None,
                "workers_per_replica": spec.workers_per_replica,
                "max_batch": spec.max_batch,
                "max_wait_ms": spec.max_wait_ms,
            }
        )
        stages.append(stats)
    result: dict[str, Any] = {
        "schema_version": 1,
        "run": dict(run),
        "pipeline": pipeline.describe(),
        "quality": {"dataset": dataset, **quality.to_dict()},
        "traffic": dict(traffic),
        "latency_ms": sim_dict["latency_ms"],
        "stages": stages,
        "dropped": int(sim_dict["dropped"]),
        "cost": cost.to_dict(),
        "sla": {
            "p99_ms": sla_p99_ms,
            "met": sim.meets_sla(sla_p99_ms),
            "attainment": sim.sla_attainment(sla_p99_ms),
        },
        "simulation": {k: v for k, v in sim_dict.items() if k not in ("latency_ms", "stages")},
        "config": dict(config),
    }
    if plan is not None:
        result["plan"] = plan.to_dict()
    if extra:
        result.update(extra)
    return result

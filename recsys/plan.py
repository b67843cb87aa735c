"""Capacity planning: the fewest replicas per stage that meet a p99 SLA, found by simulation.

The search starts every stage at the smallest replica count that keeps it stable (offered
load below ``max_utilization`` of its capacity at its best batch size), then repeatedly adds
replicas to the stage whose queueing delay is largest until the simulated end-to-end p99
meets the SLA, and finally tries to take single replicas back where the SLA still holds. A
pairing whose p99 misses the SLA even at ``max_replicas`` everywhere is reported infeasible:
its service times alone are too slow.

:func:`plan_cheapest` adds the choice of hardware: for each stage, the options of a
catalogue (instance type, workers per replica); it returns the cheapest combination whose
planned fleet meets the SLA, or marks the pairing infeasible on every option.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.errors import ConfigError
from recsys.sim.engine import SimResult, StageSpec, simulate
from recsys.sim.hardware import Hardware
from recsys.sim.service import ServiceTimeModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanResult:
    """Outcome of a capacity search: the replica counts, whether they meet the SLA, the trail."""

    stages: tuple[StageSpec, ...]
    feasible: bool
    p99_ms: float
    sla_p99_ms: float
    reason: str
    trail: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def replicas(self) -> dict[str, int]:
        return {s.name: s.replicas for s in self.stages}

    def to_dict(self) -> dict[str, Any]:
        return {
            "feasible": self.feasible,
            "replicas": self.replicas,
            "p99_ms": self.p99_ms,
            "sla_p99_ms": self.sla_p99_ms,
            "reason": self.reason,
            "simulations": len(self.trail),
            "trail": list(self.trail),
        }


def offered_qps(arrivals: np.ndarray) -> float:
    """Mean arrival rate of a trace (requests per second)."""
    if len(arrivals) < 2:
        raise ConfigError("capacity planning needs at least two arrivals")
    span = float(arrivals[-1] - arrivals[0])
    if span <= 0:
        raise ConfigError("arrivals span no time: cannot derive a rate")
    return (len(arrivals) - 1) / span


def min_stable_replicas(spec: StageSpec, qps: float, max_utilization: float = 0.95) -> int:
    """Smallest replica count whose capacity at the best batch size exceeds the offered load."""
    per_request_s = min(spec.service.mean_s(b) / b for b in range(1, spec.max_batch + 1))
    workers = qps * per_request_s / max_utilization
    return max(1, math.ceil(workers / spec.workers_per_replica))


def _bottleneck(
    result: SimResult, specs: Sequence[StageSpec], max_replicas: int, fixed: Collection[str] = ()
) -> int | None:
    """Index of the stage with the longest mean queueing delay that can still grow."""
    waits = [
        (stats.mean_wait_ms, stats.utilization, i)
        for i, stats in enumerate(result.stages)
        if specs[i].replicas < max_replicas and specs[i].name not in fixed
    ]
    return max(waits)[2] if waits else None


class _Search:
    """Bookkeeping for one capacity search: each simulation is logged in ``trail``."""

    def __init__(
        self, arrivals: np.ndarray, sla: float, seed: int, warmup_s: float, engine: str = "auto"
    ) -> None:
        self.arrivals, self.sla, self.seed, self.warmup_s = arrivals, sla, seed, warmup_s
        self.engine = engine  # recsys.sim.select: "auto" runs the compiled engine
        self.trail: list[dict[str, Any]] = []

    def run(self, specs: Sequence[StageSpec]) -> SimResult:
        result = simulate(
            self.arrivals,
            specs,
            seed=self.seed,
            warmup_s=self.warmup_s,
            record=False,
            progress=False,
            engine=self.engine,
        )
        p99 = float(result.latency_ms["p99"])
        self.trail.append(
            {
                "replicas": {s.name: s.replicas for s in specs},
                "p99_ms": p99,
                "dropped": int(result.dropped),
                "unstable": bool(result.unstable),
                "met": result.meets_sla(self.sla),
            }
        )
        log.info(
            "plan: %s -> p99 %.2f ms%s",
            self.trail[-1]["replicas"],
            p99,
            " (meets SLA)" if self.trail[-1]["met"] else "",
        )
        return result


def _with(specs: Sequence[StageSpec], i: int, replicas: int) -> list[StageSpec]:
    out = list(specs)
    out[i] = dataclasses.replace(out[i], replicas=replicas)
    return out


def plan_replicas(
    specs: Sequence[StageSpec],
    arrivals: np.ndarray,
    sla_p99_ms: float,
    seed: int = 0,
    warmup_s: float = 0.0,
    max_replicas: int = 64,
    max_utilization: float = 0.95,
    max_simulations: int = 60,
    fixed: Collection[str] = (),
    engine: str = "auto",
) -> PlanResult:
    """The fewest replicas per stage meeting ``sla_p99_ms`` at the traffic in ``arrivals``.

    Stages named in ``fixed`` (a hosted API, say) keep the replica count they come with.
    ``engine`` picks the simulator (:mod:`recsys.sim.select`).
    """
    if sla_p99_ms <= 0:
        raise ConfigError(f"sla.p99_ms must be positive, got {sla_p99_ms}")
    if max_replicas <= 0:
        raise ConfigError(f"max_replicas must be positive, got {max_replicas}")
    search = _Search(np.asarray(arrivals, np.float64), sla_p99_ms, seed, warmup_s, engine)
    qps = offered_qps(search.arrivals)
    ceiling = [
        s if s.name in fixed else dataclasses.replace(s, replicas=max_replicas) for s in specs
    ]
    best = search.run(ceiling)
    if not best.meets_sla(sla_p99_ms):
        return PlanResult(
            tuple(ceiling),
            False,
            float(best.latency_ms["p99"]),
            sla_p99_ms,
            f"p99 {best.latency_ms['p99']:.1f} ms > SLA {sla_p99_ms} ms even with "
            f"{max_replicas} replicas per stage: service times alone are too slow",
            tuple(search.trail),
        )
    current = [
        s
        if s.name in fixed
        else dataclasses.replace(
            s, replicas=min(max_replicas, min_stable_replicas(s, qps, max_utilization))
        )
        for s in specs
    ]
    result = search.run(current)
    while not result.meets_sla(sla_p99_ms) and len(search.trail) < max_simulations:
        i = _bottleneck(result, current, max_replicas, fixed)
        if i is None:
            break
        p99 = float(result.latency_ms["p99"])
        # Far from the SLA (or unstable): grow by a quarter; close to it: one replica at a time.
        far = result.unstable or result.dropped > 0 or p99 > 2 * sla_p99_ms
        step = max(1, current[i].replicas // 4) if far else 1
        current = _with(current, i, min(max_replicas, current[i].replicas + step))
        result = search.run(current)
    if not result.meets_sla(sla_p99_ms):
        current, result = ceiling, best
    current, result = _trim(search, current, result, sla_p99_ms, max_simulations, fixed)
    return PlanResult(
        tuple(current),
        True,
        float(result.latency_ms["p99"]),
        sla_p99_ms,
        f"fewest replicas found meeting p99 <= {sla_p99_ms} ms",
        tuple(search.trail),
    )


def _trim(
    search: _Search,
    current: list[StageSpec],
    result: SimResult,
    sla_p99_ms: float,
    max_simulations: int,
    fixed: Collection[str] = (),
) -> tuple[list[StageSpec], SimResult]:
    """Take replicas back one at a time wherever the SLA still holds without them."""
    improved = True
    while improved and len(search.trail) < max_simulations:
        improved = False
        for i in sorted(range(len(current)), key=lambda j: -current[j].replicas):
            if current[i].replicas <= 1 or current[i].name in fixed:
                continue
            trial = _with(current, i, current[i].replicas - 1)
            trial_result = search.run(trial)
            if trial_result.meets_sla(sla_p99_ms):
                current, result, improved = trial, trial_result, True
                break
    return current, result


# -- the cheapest hardware from a catalogue ---------------------------------------------------


@dataclass(frozen=True)
class HardwareOption:
    """One entry of a hardware catalogue: an instance type and how many workers (concurrent
    batches) one replica of it runs (default: one per vCPU, each stage using one thread)."""

    hardware: Hardware
    workers_per_replica: int | None = None

    def __post_init__(self) -> None:
        if self.workers_per_replica is not None and self.workers_per_replica < 1:
            raise ConfigError(
                f"catalogue {self.hardware.name}: workers_per_replica must be >= 1, "
                f"got {self.workers_per_replica}"
            )

    @property
    def workers(self) -> int:
        return int(self.workers_per_replica or self.hardware.vcpu)

    def on(self, spec: StageSpec, profiled: ServiceTimeModel) -> StageSpec:
        """``spec`` served on this hardware (``profiled`` is the service time measured here)."""
        return dataclasses.replace(
            spec,
            service=self.hardware.scale(profiled),
            hardware=self.hardware,
            workers_per_replica=self.workers,
        )


@dataclass(frozen=True)
class CataloguePlan:
    """The cheapest feasible hardware and replicas per stage, and every combination tried."""

    plan: PlanResult | None
    hourly_usd: float
    feasible: bool
    reason: str
    candidates: tuple[dict[str, Any], ...] = ()

    @property
    def hardware(self) -> dict[str, str]:
        if self.plan is None:
            return {}
        return {s.name: s.hardware.name if s.hardware else "?" for s in self.plan.stages}

    def to_dict(self) -> dict[str, Any]:
        return {
            "feasible": self.feasible,
            "hardware": self.hardware,
            "replicas": self.plan.replicas if self.plan else {},
            "hourly_usd": self.hourly_usd,
            "reason": self.reason,
            "candidates": list(self.candidates),
        }


def quickest_specs(
    specs: Sequence[StageSpec], catalogue: Sequence[Sequence[HardwareOption]]
) -> list[StageSpec]:
    """Each stage on its fastest option (highest speed factor, then most workers)."""
    return [
        max(options, key=lambda o: (o.hardware.speed_factor, o.workers)).on(s, s.service)
        for s, options in zip(specs, catalogue, strict=True)
    ]


def _hourly(specs: Sequence[StageSpec]) -> float:
    return sum(s.replicas * (s.hardware.price_per_hour_usd if s.hardware else 0.0) for s in specs)


def plan_cheapest(
    specs: Sequence[StageSpec],
    catalogue: Sequence[Sequence[HardwareOption]],
    arrivals: np.ndarray,
    sla_p99_ms: float,
    seed: int = 0,
    warmup_s: float = 0.0,
    max_replicas: int = 64,
    max_utilization: float = 0.95,
    max_plans: int = 12,
    fixed: Collection[str] = (),
) -> CataloguePlan:
    """The cheapest hardware and fewest replicas per stage meeting ``sla_p99_ms``.

    ``specs`` carry the service times measured on the profiling machine; ``catalogue[i]``
    lists the options stage ``i`` may run on. Each combination of options gets a lower bound
    on its hourly price (every stage at its smallest stable replica count, see
    :func:`min_stable_replicas`); combinations are planned by simulation
    (:func:`plan_replicas`) cheapest bound first, until the next bound cannot beat the
    cheapest feasible plan found (branch and bound, so the answer is the planner's cheapest,
    usually after a few plans). Infeasible when no planned combination meets the SLA.
    """
    if len(catalogue) != len(specs) or any(not options for options in catalogue):
        raise ConfigError("every stage needs at least one hardware option in the catalogue")
    arrivals = np.asarray(arrivals, np.float64)
    qps = offered_qps(arrivals)
    per_stage = [
        [o.on(s, s.service) for o in options] for s, options in zip(specs, catalogue, strict=True)
    ]
    bounds = [
        [
            min_stable_replicas(spec, qps, max_utilization) * o.hardware.price_per_hour_usd
            for spec, o in zip(specs_i, options, strict=True)
        ]
        for specs_i, options in zip(per_stage, catalogue, strict=True)
    ]
    combos = sorted(
        itertools.product(*(range(len(opts)) for opts in per_stage)),
        key=lambda c: (sum(bounds[i][j] for i, j in enumerate(c)), c),
    )
    best: PlanResult | None = None
    best_usd = math.inf
    tried: list[dict[str, Any]] = []
    fastest: PlanResult | None = None
    ceiling = [
        s if s.name in fixed else dataclasses.replace(s, replicas=max_replicas)
        for s in quickest_specs(specs, catalogue)
    ]
    result = simulate(arrivals, ceiling, seed=seed, warmup_s=warmup_s, record=False)
    if not result.meets_sla(sla_p99_ms):
        return CataloguePlan(
            None,
            math.nan,
            False,
            f"infeasible: p99 {result.latency_ms['p99']:.1f} ms > SLA {sla_p99_ms} ms even on "
            f"the fastest hardware of the catalogue with {max_replicas} replicas per stage",
            (),
        )
    for combo in combos:
        bound = sum(bounds[i][j] for i, j in enumerate(combo))
        names = {specs[i].name: catalogue[i][j].hardware.name for i, j in enumerate(combo)}
        if bound >= best_usd or len(tried) >= max_plans:
            break
        plan = plan_replicas(
            [per_stage[i][j] for i, j in enumerate(combo)],
            arrivals,
            sla_p99_ms=sla_p99_ms,
            seed=seed,
            warmup_s=warmup_s,
            max_replicas=max_replicas,
            max_utilization=max_utilization,
            fixed=fixed,
        )
        usd = _hourly(plan.stages) if plan.feasible else math.inf
        tried.append(
            {
                "hardware": names,
                "bound_hourly_usd": bound,
                "feasible": plan.feasible,
                "replicas": plan.replicas,
                "hourly_usd": usd if plan.feasible else None,
                "p99_ms": plan.p99_ms,
            }
        )
        log.info("catalogue: %s -> %s", names, f"${usd:.4f}/h" if plan.feasible else plan.reason)
        if fastest is None or plan.p99_ms < fastest.p99_ms:
            fastest = plan
        if plan.feasible and usd < best_usd:
            best, best_usd = plan, usd
    if best is None:
        shown = f"{fastest.p99_ms:.1f} ms" if fastest else "n/a"
        return CataloguePlan(
            fastest,
            math.nan,
            False,
            f"infeasible: no hardware in the catalogue meets p99 <= {sla_p99_ms} ms at "
            f"{qps:.0f} QPS ({len(tried)} of {len(combos)} combination(s) planned; best p99 "
            f"{shown})",
            tuple(tried),
        )
    return CataloguePlan(
        best,
        best_usd,
        True,
        f"cheapest of {len(combos)} hardware combination(s) meeting p99 <= {sla_p99_ms} ms "
        f"({len(tried)} planned by simulation, the rest bounded out)",
        tuple(tried),
    )

"""Capacity planning: the fewest replicas per stage that meet a p99 SLA, found by simulation.

The search starts every stage at the smallest replica count that keeps it stable (offered
load below ``max_utilization`` of its capacity at its best batch size), then repeatedly adds
replicas to the stage whose queueing delay is largest until the simulated end-to-end p99
meets the SLA, and finally tries to take single replicas back where the SLA still holds. A
pairing whose p99 misses the SLA even at ``max_replicas`` everywhere is reported infeasible:
its service times alone are too slow.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.errors import ConfigError
from recsys.sim.engine import SimResult, StageSpec, simulate

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


def _meets(result: SimResult, sla_p99_ms: float) -> bool:
    return result.meets_sla(sla_p99_ms)


def _bottleneck(result: SimResult, specs: Sequence[StageSpec], max_replicas: int) -> int | None:
    """Index of the stage with the longest mean queueing delay that can still grow."""
    waits = [
        (stats.mean_wait_ms, stats.utilization, i)
        for i, stats in enumerate(result.stages)
        if specs[i].replicas < max_replicas
    ]
    return max(waits)[2] if waits else None


class _Search:
    """Bookkeeping for one capacity search: each simulation is logged in ``trail``."""

    def __init__(self, arrivals: np.ndarray, sla: float, seed: int, warmup_s: float) -> None:
        self.arrivals, self.sla, self.seed, self.warmup_s = arrivals, sla, seed, warmup_s
        self.trail: list[dict[str, Any]] = []

    def run(self, specs: Sequence[StageSpec]) -> SimResult:
        result = simulate(
            self.arrivals,
            specs,
            seed=self.seed,
            warmup_s=self.warmup_s,
            record=False,
            progress=False,
        )
        p99 = float(result.latency_ms["p99"])
        self.trail.append(
            {
                "replicas": {s.name: s.replicas for s in specs},
                "p99_ms": p99,
                "dropped": int(result.dropped),
                "unstable": bool(result.unstable),
                "met": _meets(result, self.sla),
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
) -> PlanResult:
    """The fewest replicas per stage meeting ``sla_p99_ms`` at the traffic in ``arrivals``."""
    if sla_p99_ms <= 0:
        raise ConfigError(f"sla.p99_ms must be positive, got {sla_p99_ms}")
    if max_replicas <= 0:
        raise ConfigError(f"max_replicas must be positive, got {max_replicas}")
    search = _Search(np.asarray(arrivals, np.float64), sla_p99_ms, seed, warmup_s)
    qps = offered_qps(search.arrivals)
    ceiling = [dataclasses.replace(s, replicas=max_replicas) for s in specs]
    best = search.run(ceiling)
    if not _meets(best, sla_p99_ms):
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
        dataclasses.replace(
            s, replicas=min(max_replicas, min_stable_replicas(s, qps, max_utilization))
        )
        for s in specs
    ]
    result = search.run(current)
    while not _meets(result, sla_p99_ms) and len(search.trail) < max_simulations:
        i = _bottleneck(result, current, max_replicas)
        if i is None:
            break
        p99 = float(result.latency_ms["p99"])
        # Far from the SLA (or unstable): grow by a quarter; close to it: one replica at a time.
        far = result.unstable or result.dropped > 0 or p99 > 2 * sla_p99_ms
        step = max(1, current[i].replicas // 4) if far else 1
        current = _with(current, i, min(max_replicas, current[i].replicas + step))
        result = search.run(current)
    if not _meets(result, sla_p99_ms):
        current, result = ceiling, best
    current, result = _trim(search, current, result, sla_p99_ms, max_simulations)
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
) -> tuple[list[StageSpec], SimResult]:
    """Take replicas back one at a time wherever the SLA still holds without them."""
    improved = True
    while improved and len(search.trail) < max_simulations:
        improved = False
        for i in sorted(range(len(current)), key=lambda j: -current[j].replicas):
            if current[i].replicas <= 1:
                continue
            trial = _with(current, i, current[i].replicas - 1)
            trial_result = search.run(trial)
            if _meets(trial_result, sla_p99_ms):
                current, result, improved = trial, trial_result, True
                break
    return current, result

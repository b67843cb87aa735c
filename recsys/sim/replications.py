"""Independent replications: the same scenario with independent seeds, and Student-t intervals.

Batch means (the default in :func:`~recsys.sim.engine.simulate`) put an interval around the
percentiles of one long run. Replications need no assumption about autocorrelation and also
cover the randomness of the arrivals, at the price of a warm-up per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys.errors import ConfigError
from recsys.metrics_latency import replication_ci
from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.results import SimResult
from recsys.sim.workload import Workload

KEYS = ("p50", "p90", "p95", "p99", "p999", "mean")


@dataclass(frozen=True, eq=False)
class ReplicatedResult:
    """Per-replication results and the across-replication summary."""

    runs: list[SimResult]
    latency_ms: dict[str, float]  # mean over replications, with ``<key>_ci_low/_ci_high``
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        per_run = [r.latency_ms for r in self.runs]
        return {
            "latency_ms": self.latency_ms,
            "ci_method": "replications",
            "confidence": self.confidence,
            "n_replications": len(self.runs),
            "runs": [{k: run.get(k) for k in KEYS} for run in per_run],
            "dropped": [r.dropped for r in self.runs],
            "unstable": any(r.unstable for r in self.runs),
        }


def simulate_replications(
    workload: Workload,
    stages: Sequence[StageSpec],
    n_replications: int,
    seed: int = 0,
    *,
    n_requests: int | None = None,
    duration_s: float | None = None,
    warmup_requests: int = 0,
    autoscaler: AutoscalerSpec | None = None,
    confidence: float = 0.95,
) -> ReplicatedResult:
    """Run ``n_replications`` independent runs (fresh arrivals and service draws each)."""
    if n_replications < 2:
        raise ConfigError(f"n_replications must be >= 2 for an interval, got {n_replications}")
    runs = []
    for child in np.random.SeedSequence(seed).spawn(n_replications):
        arrival_seq, service_seq = child.spawn(2)
        arrivals = workload.arrivals(np.random.default_rng(arrival_seq), duration_s, n_requests)
        if warmup_requests >= arrivals.size:
            raise ConfigError(f"warmup_requests={warmup_requests} >= {arrivals.size} arrivals")
        run_seed = int(service_seq.generate_state(1)[0])
        runs.append(
            simulate(
                arrivals,
                stages,
                seed=run_seed,
                warmup_s=float(arrivals[warmup_requests]),
                record=False,
                autoscaler=autoscaler,
            )
        )
    summary: dict[str, float] = {}
    for key in KEYS:
        est, low, high = replication_ci([r.latency_ms[key] for r in runs], confidence)
        summary |= {key: est, f"{key}_ci_low": low, f"{key}_ci_high": high}
    return ReplicatedResult(runs=runs, latency_ms=summary, confidence=confidence)

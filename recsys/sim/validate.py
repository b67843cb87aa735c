"""Simulate a textbook queue and put the simulated numbers beside the closed forms.

``validate_queue("mmc" | "md1" | "mg1", ...)`` runs one stage fed by Poisson arrivals through
the real engine and returns, for each metric, the analytic value, the simulated estimate, its
batch-means confidence interval, whether the analytic value lies inside it, and the relative
error. The ``validate_mmc`` / ``validate_md1`` experiments write this into ``result.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recsys.errors import ConfigError
from recsys.metrics_latency import CI, batch_ci, mean_ci, percentile_ci, percentile_key
from recsys.sim import theory
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic, Exponential, Gamma, LogNormal, ServiceTimeModel
from recsys.sim.workload import Poisson


def _model(
    kind: str, mean_ms: float, cv: float | None, servers: int, family: str
) -> ServiceTimeModel:
    if kind == "mmc":
        return Exponential(mean_ms)
    if servers != 1:
        raise ConfigError(
            f"validate {kind}: the closed form is for one server, got servers={servers}"
        )
    if kind == "md1":
        return Deterministic(mean_ms)
    if kind == "mg1":
        if cv is None:
            raise ConfigError("validate mg1 needs cv")
        return {"lognormal": LogNormal, "gamma": Gamma}[family](mean_ms, cv)
    raise ConfigError(f"validate kind must be 'mmc', 'md1' or 'mg1', got {kind!r}")


def _analytic(
    kind: str, lam: float, mean_s: float, c: int, *, cv: float | None, qs: Sequence[float]
) -> dict[str, float]:
    out: dict[str, float] = {}
    if kind == "mmc":
        mu = 1.0 / mean_s
        out["p_wait"] = theory.erlang_c(c, lam, mu)
        out["mean_wait_ms"] = theory.mmc_mean_wait(c, lam, mu) * 1000
        for q in qs:
            out[f"wait_{percentile_key(q)}_ms"] = (
                theory.mmc_wait_quantile(q / 100, c, lam, mu) * 1000
            )
    elif kind == "md1":
        out["p_wait"] = lam * mean_s  # P(W > 0) = rho for any M/G/1
        out["mean_wait_ms"] = theory.md1_mean_wait(lam, mean_s) * 1000
        for q in qs:
            out[f"wait_{percentile_key(q)}_ms"] = (
                theory.md1_wait_quantile(q / 100, lam, mean_s) * 1000
            )
    else:
        out["p_wait"] = lam * mean_s
        out["mean_wait_ms"] = theory.mg1_mean_wait(lam, mean_s, cv or 0.0) * 1000
    out["mean_queue_length"] = lam * out["mean_wait_ms"] / 1000  # Little's law
    return out


def validate_queue(
    kind: str,
    arrival_rate_qps: float,
    mean_service_ms: float,
    servers: int = 1,
    cv: float | None = None,
    *,
    n_requests: int = 200_000,
    warmup_requests: int | None = None,
    seed: int = 0,
    n_batches: int = 20,
    confidence: float = 0.95,
    quantiles: Sequence[float] = (50.0, 90.0, 99.0),
    service_family: str = "lognormal",
) -> dict[str, Any]:
    """Simulated vs analytic waiting time of an M/M/c, M/D/1 or M/G/1 queue (JSON-ready)."""
    model = _model(kind, mean_service_ms, cv, servers, service_family)
    lam, mean_s = float(arrival_rate_qps), mean_service_ms / 1000.0
    rho = lam * mean_s / servers
    if rho >= 1.0:
        raise ConfigError(
            f"validate {kind}: utilisation {rho:.3f} >= 1 has no steady state to compare"
        )
    analytic = _analytic(kind, lam, mean_s, servers, cv=cv, qs=quantiles)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    arrivals = Poisson(lam).arrivals(rng, n_requests=n_requests)
    warm = n_requests // 20 if warmup_requests is None else warmup_requests
    if not 0 <= warm < n_requests - n_batches:
        raise ConfigError(f"warmup_requests={warm} leaves too few of n_requests={n_requests}")
    stage = StageSpec("queue", model, replicas=servers)
    result = simulate(
        arrivals,
        [stage],
        seed=seed,
        warmup_s=float(arrivals[warm]),
        n_batches=n_batches,
        confidence=confidence,
    )
    assert result.records is not None
    rec = result.records[result.records["arrival_s"] >= arrivals[warm]]
    wait_ms = rec["queue_wait_ms"].to_numpy()
    queue_len = rec["queue_queue_len"].to_numpy(np.float64)
    simulated: dict[str, CI] = {
        "p_wait": batch_ci(wait_ms > 0, np.mean, n_batches, confidence),
        "mean_wait_ms": mean_ci(wait_ms, n_batches, confidence),
        # PASTA: Poisson arrivals see the time-average queue, so this checks Little's law too.
        "mean_queue_length": mean_ci(queue_len, n_batches, confidence),
    }
    for q in quantiles:
        key = f"wait_{percentile_key(q)}_ms"
        if key in analytic:
            simulated[key] = percentile_ci(wait_ms, q, n_batches, confidence)
    metrics = {}
    for key, ci in simulated.items():
        truth = analytic[key]
        metrics[key] = {
            "analytic": truth,
            "simulated": ci.estimate,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "within_ci": bool(ci.low <= truth <= ci.high) if math.isfinite(ci.low) else None,
            "rel_error": (ci.estimate - truth) / truth if truth else None,
        }
    return {
        "kind": kind,
        "params": {
            "arrival_rate_qps": lam,
            "mean_service_ms": mean_service_ms,
            "servers": servers,
            "cv": model.cv if hasattr(model, "cv") else cv,
            "utilization": rho,
        },
        "n_requests": n_requests,
        "warmup_requests": warm,
        "seed": seed,
        "ci": {"method": "batch_means", "n_batches": n_batches, "confidence": confidence},
        "metrics": metrics,
        "all_within_ci": all(m["within_ci"] is not False for m in metrics.values()),
        "simulated_utilization": result.stages[0].utilization,
        # End-to-end (sojourn) summary of the same run, for result.json's latency keys.
        "latency_ms": dict(result.latency_ms),
        "stage": result.stages[0].to_dict(),
        "dropped": int(result.dropped),
    }

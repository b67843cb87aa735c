"""A machine whose speed drifts: service times scaled by a piecewise-constant factor of time.

A small shared machine (a 2-vCPU virtual machine, its host, the neighbours on that host) does
not run at one speed. Measured in the load test on this machine, the mean service time of
the stages over 1-second windows varies by 10-15% (coefficient of variation), both stages
slow down and speed up together (their window means correlate at 0.9), and a batch's service
time is still correlated with the one 50 batches later (``simulations/calibration.md``).
Independent draws from the pooled service-time distribution keep the spread of single
batches but lose that clustering: a 1-second stretch at 85% utilisation in the middle of a
70% run builds the queues that set the p99.

Model: a batch starting at time ``t`` takes its service-time draw times ``factor(t)``, a
step function over windows of ``window_s`` seconds. Stages given the same :class:`Slowdown`
share one machine's speed. :func:`block_draws` makes such a path from measured window
factors (a block bootstrap keeps their correlation within a block). SimPy and reference
engines only (``auto`` picks SimPy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recsys.errors import ConfigError


@dataclass(frozen=True, eq=False)
class Slowdown:
    """Service-time factor ``factors[i]`` for batches starting in ``[i w, (i + 1) w)``.

    Before time 0 the first factor applies, after the last window the last one (make the path
    as long as the run).
    """

    window_s: float
    factors: np.ndarray

    def __post_init__(self) -> None:
        factors = np.asarray(self.factors, dtype=np.float64)
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ConfigError(f"slowdown window_s must be > 0, got {self.window_s}")
        if factors.ndim != 1 or factors.size == 0:
            raise ConfigError("slowdown factors must be a non-empty 1-d array")
        if not (np.all(np.isfinite(factors)) and factors.min() > 0):
            raise ConfigError("slowdown factors must be finite and > 0")
        object.__setattr__(self, "factors", factors)

    def factor(self, t: float) -> float:
        """The factor for a batch starting at ``t`` seconds."""
        i = int(t // self.window_s) if t > 0 else 0
        return float(self.factors[min(i, self.factors.size - 1)])

    def describe(self) -> dict[str, float]:
        f = self.factors
        return {
            "window_s": self.window_s,
            "windows": int(f.size),
            "mean": float(f.mean()),
            "cv": float(f.std() / f.mean()),
            "p99": float(np.quantile(f, 0.99)),
        }


def block_draws(sequence: np.ndarray, n: int, rng: np.random.Generator, block: int) -> np.ndarray:
    """``n`` values of ``sequence`` taken in contiguous runs of ``block`` from random starts
    (a block bootstrap): values that come in clumps stay clumped."""
    seq = np.asarray(sequence, dtype=np.float64)
    if seq.size == 0 or n < 0:
        raise ConfigError("block_draws needs a non-empty sequence and n >= 0")
    block = max(1, min(block, seq.size))
    starts = rng.integers(0, seq.size - block + 1, size=max(1, -(-n // block)))
    return np.concatenate([seq[s : s + block] for s in starts])[:n]


def bootstrap_path(
    factors: np.ndarray, window_s: float, duration_s: float, block: int, rng: np.random.Generator
) -> Slowdown:
    """A :class:`Slowdown` covering ``duration_s``, block-bootstrapped from measured window
    ``factors`` (blocks of ``block`` windows): one more realisation of the machine's drift,
    overall level included (each path's mean differs from 1 as a real run's does)."""
    n = max(1, math.ceil(duration_s / window_s) + 1)
    return Slowdown(window_s, block_draws(factors, n, rng, block))


def modulated(stages: object) -> bool:
    """Whether any stage of ``stages`` (StageSpecs) has a :class:`Slowdown`."""
    return any(getattr(s, "slowdown", None) is not None for s in stages)  # type: ignore[attr-defined]


__all__ = ["Slowdown", "block_draws", "bootstrap_path", "modulated"]

"""Latency percentiles with confidence intervals, shared by the simulator and the load test.

Two ways to put an interval around a statistic of one long, autocorrelated run:

- **batch means** (:func:`batch_ci`, :func:`percentile_ci`, :func:`mean_ci`): cut the samples,
  in arrival order, into ``n_batches`` contiguous batches, compute the statistic in each batch
  and treat the batch values as roughly independent. The interval is centred on the statistic
  of the *whole* sample (a batch-quantile average is biased for tail quantiles) with half-width
  ``t(k-1) * sd(batch values) / sqrt(k)``. Batches must be much longer than the correlation
  time of the series (for a queue, many busy periods).
- **independent replications** (:func:`replication_ci`): the same, with one value per
  independent run (different seeds), which needs no correlation assumption.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

from recsys.errors import ConfigError

DEFAULT_QUANTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)

# A tail quantile is only estimable in a batch that holds a few samples beyond it.
MIN_TAIL_SAMPLES_PER_BATCH = 5


class CI(NamedTuple):
    """A point estimate with a two-sided confidence interval (NaN bounds when not estimable)."""

    estimate: float
    low: float
    high: float


def percentile_key(q: float) -> str:
    """``50 -> 'p50'``, ``99.9 -> 'p999'``: the key used in result dictionaries."""
    text = f"{float(q):g}"
    return "p" + text.replace(".", "")


def _as_ms(samples: Iterable[float] | np.ndarray, unit: str) -> np.ndarray:
    factor = {"s": 1000.0, "ms": 1.0, "us": 1e-3}.get(unit)
    if factor is None:
        raise ConfigError(f"unit must be 's', 'ms' or 'us', got {unit!r}")
    return np.asarray(samples, dtype=np.float64) * factor


def percentiles_ms(
    samples: Iterable[float] | np.ndarray,
    qs: Sequence[float] = DEFAULT_QUANTILES,
    unit: str = "ms",
) -> dict[str, float]:
    """Percentiles of ``samples`` (given in ``unit``) in milliseconds, keyed ``p50``, ``p999``...

    An empty sample gives NaN for every key (a run where nothing completed).
    """
    values = _as_ms(samples, unit)
    if values.size == 0:
        return {percentile_key(q): math.nan for q in qs}
    found = np.percentile(values, list(qs))
    return {percentile_key(q): float(v) for q, v in zip(qs, found, strict=True)}


def _t_half_width(batch_values: np.ndarray, confidence: float) -> float:
    k = batch_values.size
    t = stats.t.ppf(0.5 + confidence / 2.0, df=k - 1)
    return float(t * batch_values.std(ddof=1) / math.sqrt(k))


def _check_ci_args(n: int, n_batches: int, confidence: float) -> None:
    if n_batches < 2:
        raise ConfigError(f"n_batches must be >= 2, got {n_batches}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if n < n_batches:
        raise ConfigError(f"need at least n_batches={n_batches} samples, got {n}")


def batch_ci(
    samples: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    n_batches: int = 20,
    confidence: float = 0.95,
) -> CI:
    """Batch-means interval for any statistic of an ordered series (see module docstring)."""
    values = np.asarray(samples, dtype=np.float64)
    _check_ci_args(values.size, n_batches, confidence)
    batches = np.array_split(values, n_batches)
    batch_values = np.array([statistic(b) for b in batches])
    estimate = float(statistic(values))
    half = _t_half_width(batch_values, confidence)
    return CI(estimate, estimate - half, estimate + half)


def percentile_ci(
    samples: Iterable[float] | np.ndarray,
    q: float,
    n_batches: int = 20,
    confidence: float = 0.95,
) -> CI:
    """Batch-means interval for the ``q``-th percentile of an ordered series.

    Returns NaN bounds (estimate kept) when a batch is too short to hold
    ``MIN_TAIL_SAMPLES_PER_BATCH`` samples beyond the quantile, e.g. p99.9 from 20k samples.
    """
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return CI(math.nan, math.nan, math.nan)
    if values.size // max(n_batches, 1) * (1.0 - q / 100.0) < MIN_TAIL_SAMPLES_PER_BATCH:
        return CI(float(np.percentile(values, q)), math.nan, math.nan)
    return batch_ci(values, lambda x: float(np.percentile(x, q)), n_batches, confidence)


def mean_ci(
    samples: Iterable[float] | np.ndarray, n_batches: int = 20, confidence: float = 0.95
) -> CI:
    """Batch-means interval for the mean of an ordered (possibly autocorrelated) series."""
    return batch_ci(np.asarray(samples, dtype=np.float64), np.mean, n_batches, confidence)


def replication_ci(estimates: Sequence[float] | np.ndarray, confidence: float = 0.95) -> CI:
    """Student-t interval from independent replications (one estimate per seed)."""
    values = np.asarray(estimates, dtype=np.float64)
    _check_ci_args(values.size, 2, confidence)
    mean = float(values.mean())
    half = _t_half_width(values, confidence)
    return CI(mean, mean - half, mean + half)


def latency_summary_ms(
    samples: Iterable[float] | np.ndarray,
    qs: Sequence[float] = DEFAULT_QUANTILES,
    unit: str = "ms",
    n_batches: int = 20,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Flat dict ``{'p99': x, 'p99_ci_low': lo, 'p99_ci_high': hi, ..., 'mean': m, 'n': n}``.

    All values are floats so the dict drops straight into ``result.json``; intervals are batch
    means over the samples in the order given (arrival order for a run).
    """
    values = _as_ms(samples, unit)
    out: dict[str, float] = {}
    enough = values.size >= n_batches
    for q in qs:
        key = percentile_key(q)
        if enough:
            est, low, high = percentile_ci(values, q, n_batches, confidence)
        else:
            est = float(np.percentile(values, q)) if values.size else math.nan
            low = high = math.nan
        out[key] = est
        out[f"{key}_ci_low"] = low
        out[f"{key}_ci_high"] = high
    out["mean"] = float(values.mean()) if values.size else math.nan
    out["n"] = int(values.size)
    return out

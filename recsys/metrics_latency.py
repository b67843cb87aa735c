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

Runs too long to keep every sample (``record=False`` in the simulator) count them in
log-bucketed histograms instead (:class:`Histogram`, :func:`histogram_summary_ms`): fixed
memory, percentiles within a relative ``1 / (2 * sub)`` of the exact ones (0.2% by default),
batch-means intervals from one histogram per batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.special import stdtrit  # Student t quantile; scipy.stats takes 1 s to import

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
    t = stdtrit(k - 1, 0.5 + confidence / 2.0)
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


# -- streaming percentiles: log-bucketed histograms -------------------------------------------
#
# A value x >= 2**(MIN_EXP - 1) with x = m * 2**e (0.5 <= m < 1, ``frexp``) falls in bucket
# ``1 + (e - MIN_EXP) * sub + floor((m - 0.5) * 2 * sub)``: each power of two is cut into
# ``sub`` equal sub-buckets, and a bucket stands for its midpoint. Every value in a bucket is
# within a relative ``1 / (2 * sub)`` of that midpoint, so a percentile read from the counts
# (interpolated between order statistics the way ``numpy.percentile`` does, then clamped to
# the exact minimum and maximum) is within relative error ``1 / (2 * sub)`` of the exact one
# (0.2% for the default ``sub = 256``). Values below ``2**(MIN_EXP - 1)`` (about 1 ns when
# the unit is seconds) count as 0 (absolute error below that); values of ``2**MAX_EXP`` or
# more (about 24 days) share one overflow bucket read as the exact maximum.
HIST_SUB_BUCKETS = 256
HIST_MIN_EXP = -29
HIST_MAX_EXP = 21


def hist_size(sub: int = HIST_SUB_BUCKETS) -> int:
    """Number of buckets: zero, ``(MAX_EXP - MIN_EXP + 1) * sub`` log buckets, overflow."""
    return 2 + (HIST_MAX_EXP - HIST_MIN_EXP + 1) * sub


def hist_relative_error(sub: int = HIST_SUB_BUCKETS) -> float:
    """Largest relative error of a percentile read from a histogram with ``sub`` sub-buckets."""
    return 1.0 / (2 * sub)


def hist_index(values: np.ndarray, sub: int = HIST_SUB_BUCKETS) -> np.ndarray:
    """Bucket of each (non-negative, finite) value; see the comment above."""
    x = np.asarray(values, dtype=np.float64)
    m, e = np.frexp(x)
    idx = 1 + (e.astype(np.int64) - HIST_MIN_EXP) * sub + ((m - 0.5) * (2 * sub)).astype(np.int64)
    idx = np.where(e > HIST_MAX_EXP, hist_size(sub) - 1, idx)
    return np.where(x < 2.0 ** (HIST_MIN_EXP - 1), 0, idx)


def hist_midpoints(sub: int = HIST_SUB_BUCKETS) -> np.ndarray:
    """Value each bucket stands for (0 for the zero bucket, +inf for the overflow bucket)."""
    j = np.arange(hist_size(sub) - 2)
    e = HIST_MIN_EXP + j // sub
    mid = np.ldexp(1.0 + (j % sub + 0.5) / sub, e - 1)
    return np.concatenate([[0.0], mid, [math.inf]])


class Histogram(NamedTuple):
    """Bucket counts plus the exact sum, minimum and maximum of the values counted."""

    counts: np.ndarray
    total: float
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray, sub: int = HIST_SUB_BUCKETS) -> Histogram:
        """Histogram of ``values`` (non-negative, finite)."""
        x = np.asarray(values, dtype=np.float64)
        counts = np.bincount(hist_index(x, sub), minlength=hist_size(sub))
        if x.size == 0:
            return cls(counts, 0.0, math.inf, -math.inf)
        return cls(counts, float(x.sum()), float(x.min()), float(x.max()))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def sub(self) -> int:
        return (self.counts.size - 2) // (HIST_MAX_EXP - HIST_MIN_EXP + 1)

    def merge(self, other: Histogram) -> Histogram:
        return Histogram(
            self.counts + other.counts,
            self.total + other.total,
            min(self.low, other.low),
            max(self.high, other.high),
        )

    def quantiles(self, qs: Sequence[float]) -> np.ndarray:
        """Percentiles ``qs`` (0-100), ``numpy.percentile``-style, within the stated error."""
        n = self.n
        if n == 0:
            return np.full(len(qs), math.nan)
        cum = np.cumsum(self.counts)
        mids = _midpoints(self.sub)
        h = (n - 1) * np.asarray(qs, dtype=np.float64) / 100.0
        k = np.floor(h)
        k1 = np.minimum(k + 1, n - 1)
        lo = np.clip(mids[np.searchsorted(cum, k, side="right")], self.low, self.high)
        hi = np.clip(mids[np.searchsorted(cum, k1, side="right")], self.low, self.high)
        # The first and last order statistics are the exact minimum and maximum.
        lo = np.where(k == 0, self.low, np.where(k == n - 1, self.high, lo))
        hi = np.where(k1 == n - 1, self.high, np.where(k1 == 0, self.low, hi))
        return lo + (h - k) * (hi - lo)

    def fraction_at_most(self, threshold: float) -> float:
        """Share of values <= ``threshold`` (a value counts by its bucket's midpoint)."""
        n = self.n
        if n == 0:
            return math.nan
        mids = np.clip(_midpoints(self.sub), self.low, self.high)
        return float(self.counts[mids <= threshold].sum() / n)


_MIDPOINTS: dict[int, np.ndarray] = {}


def _midpoints(sub: int) -> np.ndarray:
    if sub not in _MIDPOINTS:
        _MIDPOINTS[sub] = hist_midpoints(sub)
    return _MIDPOINTS[sub]


def histogram_summary_ms(
    batches: Sequence[Histogram],
    qs: Sequence[float] = DEFAULT_QUANTILES,
    scale_to_ms: float = 1000.0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """:func:`latency_summary_ms` from per-batch histograms (consecutive groups of requests).

    Estimates come from the merged histogram; intervals are batch means over the batches'
    own estimates, with the same rules as :func:`percentile_ci` (NaN bounds when a batch is
    too short for the tail). Values were counted in a unit ``scale_to_ms`` times the ms.
    """
    if not batches:
        raise ConfigError("histogram_summary_ms needs at least one batch")
    merged = batches[0]
    for other in batches[1:]:
        merged = merged.merge(other)
    n, k = merged.n, len(batches)
    estimates = merged.quantiles(qs) * scale_to_ms
    out: dict[str, float] = {}
    per_batch = np.array([b.quantiles(qs) for b in batches]) * scale_to_ms if k >= 2 else None
    for i, q in enumerate(qs):
        key = percentile_key(q)
        est, low, high = float(estimates[i]), math.nan, math.nan
        enough = per_batch is not None and n >= k
        if enough and n // k * (1.0 - q / 100.0) >= MIN_TAIL_SAMPLES_PER_BATCH:
            assert per_batch is not None
            half = _t_half_width(per_batch[:, i], confidence)
            low, high = est - half, est + half
        out[key] = est
        out[f"{key}_ci_low"] = low
        out[f"{key}_ci_high"] = high
    out["mean"] = merged.total / n * scale_to_ms if n else math.nan
    out["n"] = n
    return out

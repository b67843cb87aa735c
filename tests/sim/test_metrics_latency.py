"""Percentiles and batch-means confidence intervals (recsys.metrics_latency)."""

import math

import numpy as np
import pytest
from scipy import stats

from recsys.errors import ConfigError
from recsys.metrics_latency import (
    latency_summary_ms,
    mean_ci,
    percentile_ci,
    percentile_key,
    percentiles_ms,
    replication_ci,
)


def test_percentile_keys():
    assert [percentile_key(q) for q in (50, 90.0, 99, 99.9, 99.99)] == [
        "p50",
        "p90",
        "p99",
        "p999",
        "p9999",
    ]


def test_percentiles_convert_units_to_ms():
    out = percentiles_ms([0.001, 0.002, 0.003], qs=(50,), unit="s")
    assert out == {"p50": pytest.approx(2.0)}
    assert percentiles_ms([1.0, 3.0], qs=(50,)) == {"p50": 2.0}


def test_empty_sample_gives_nan():
    assert all(math.isnan(v) for v in percentiles_ms([]).values())


def test_replication_ci_is_student_t():
    est, low, high = replication_ci([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (est, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))


def _coverage_bound(reps: int, level: float) -> float:
    """Lowest coverage count consistent with the nominal level (4 binomial sd below it)."""
    return reps * level - 4 * math.sqrt(reps * level * (1 - level))


def test_batch_means_intervals_cover_at_their_nominal_rate():
    # 200 independent samples of Exp(1): the 95% intervals for the mean (1) and the p90
    # (ln 10) must cover the truth about 190 times; 4 binomial sd below that is the floor.
    reps, hits_mean, hits_p90 = 200, 0, 0
    for seed in range(reps):
        x = np.random.default_rng(seed).exponential(1.0, 4000)
        _, lo, hi = mean_ci(x)
        hits_mean += lo <= 1.0 <= hi
        _, lo, hi = percentile_ci(x, 90)
        hits_p90 += lo <= math.log(10) <= hi
    assert hits_mean >= _coverage_bound(reps, 0.95)
    assert hits_p90 >= _coverage_bound(reps, 0.95)


def test_tail_interval_needs_enough_samples_per_batch():
    x = np.random.default_rng(0).exponential(1.0, 20_000)
    est, low, high = percentile_ci(x, 99.9, n_batches=20)  # 1 sample beyond p99.9 per batch
    assert math.isfinite(est)
    assert math.isnan(low)
    assert math.isnan(high)
    assert math.isfinite(percentile_ci(x, 99, n_batches=20).low)


def test_latency_summary_is_flat_floats():
    out = latency_summary_ms(np.arange(1, 10_001, dtype=float), unit="ms")
    assert out["p50"] == pytest.approx(5000.5)
    assert out["p50_ci_low"] < out["p50"] < out["p50_ci_high"]
    assert out["n"] == 10_000
    assert {"p90", "p95", "p99", "p999", "mean"} <= set(out)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        mean_ci(np.ones(10), n_batches=1)
    with pytest.raises(ConfigError):
        mean_ci(np.ones(10), confidence=1.5)
    with pytest.raises(ConfigError):
        percentiles_ms([1.0], unit="minutes")

"""Synthetic workloads: rates, shapes and burstiness against their definitions."""

import math

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.metrics_latency import batch_ci
from recsys.sim.workload import Bursty, Diurnal, Poisson, Workload, mmpp_interarrival_cv


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_poisson_count_and_horizon():
    times = Poisson(100.0).arrivals(_rng(), duration_s=1000.0)
    assert np.all(np.diff(times) >= 0)
    assert times[-1] < 1000.0
    # N ~ Poisson(100 000): within 5 standard deviations.
    assert abs(times.size - 100_000) < 5 * math.sqrt(100_000)
    assert Poisson(100.0).arrivals(_rng(), n_requests=500).size == 500
    both = Poisson(100.0).arrivals(_rng(), duration_s=1.0, n_requests=10_000)
    assert both.size < 10_000
    assert both[-1] < 1.0
    assert isinstance(Poisson(1.0), Workload)


def test_same_seed_same_arrivals():
    assert np.array_equal(
        Poisson(5.0).arrivals(_rng(7), n_requests=100),
        Poisson(5.0).arrivals(_rng(7), n_requests=100),
    )


def test_poisson_needs_a_horizon_and_a_rate():
    with pytest.raises(ConfigError, match="duration_s or n_requests"):
        Poisson(1.0).arrivals(_rng())
    with pytest.raises(ConfigError):
        Poisson(0.0)
    with pytest.raises(ConfigError):
        Poisson(1.0).arrivals(_rng(), duration_s=-1.0)


def test_diurnal_curve_peak_and_mean():
    day = Diurnal(peak_qps=100.0, peak_factor=2.0, peak_hour=20)
    assert day.rate_qps(20 * 3600.0) == pytest.approx(100.0)
    assert float(np.max(day.rate_qps(np.arange(0, 86400, 60.0)))) == pytest.approx(100.0)
    assert day.peak_factor == pytest.approx(2.0, rel=1e-6)
    assert day.mean_rate_qps == pytest.approx(50.0, rel=1e-6)
    moved = Diurnal(peak_qps=100.0, peak_hour=12)
    assert moved.rate_qps(12 * 3600.0) == pytest.approx(100.0)


def test_diurnal_hourly_counts_follow_the_curve():
    # A day compressed into 2400 s: every "hour" (100 s) holds a Poisson count whose mean is
    # the integral of the rate over that hour; each must lie within 5 standard deviations.
    day = Diurnal(peak_qps=200.0, peak_factor=2.0, day_s=2400.0)
    times = day.arrivals(_rng(1), duration_s=2400.0)
    counts = np.bincount((times // 100).astype(int), minlength=24)
    grid = np.linspace(0, 2400, 24 * 1000 + 1)
    rate = day.rate_qps(grid)
    expected = [
        np.trapezoid(rate[i * 1000 : (i + 1) * 1000 + 1], grid[i * 1000 : (i + 1) * 1000 + 1])
        for i in range(24)
    ]
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert day.arrivals(_rng(1), n_requests=1234).size == 1234


def test_diurnal_rejects_bad_curves():
    with pytest.raises(ConfigError):
        Diurnal(10.0, hourly=[1.0] * 23)
    with pytest.raises(ConfigError):
        Diurnal(10.0, peak_factor=0.5)
    flat = Diurnal(10.0, peak_factor=1.0)
    assert flat.rate_qps(3 * 3600.0) == pytest.approx(10.0)


def test_gamma_interarrivals_have_the_requested_cv():
    cv, n = 2.0, 200_000
    gaps = np.diff(Bursty(100.0, cv, kind="gamma").arrivals(_rng(2), n_requests=n))
    # Standard error of a sample variance: sigma^2 sqrt((kurtosis - 1) / n); Gamma kurtosis is
    # 3 + 6 / shape. The CV's relative error is half the variance's.
    shape = 1 / cv**2
    rel_se = 0.5 * math.sqrt((3 + 6 / shape - 1) / n)
    assert abs(gaps.std() / gaps.mean() / cv - 1) < 5 * rel_se
    assert abs(gaps.mean() * 100.0 - 1) < 5 * cv / math.sqrt(n)
    assert Bursty(100.0, 0.5).arrivals(_rng(), duration_s=10.0)[-1] < 10.0


def test_mmpp_formula_and_simulation_agree():
    rates = np.array([50.0, 50.0])
    assert mmpp_interarrival_cv(rates, 1.0, 0.3) == pytest.approx(1.0)  # no modulation: Poisson
    bursty = Bursty(200.0, 2.0, kind="mmpp", burst_s=0.5, burst_fraction=0.1)
    assert bursty.burst_ratio > 1
    times = bursty.arrivals(_rng(3), n_requests=400_000)
    gaps = np.diff(times)
    # Gaps are correlated (bursts), so the interval is batch means at 99.9%.
    cv = batch_ci(gaps, lambda g: float(g.std() / g.mean()), n_batches=20, confidence=0.999)
    assert cv.low <= 2.0 <= cv.high
    rate = batch_ci(gaps, lambda g: float(1 / g.mean()), n_batches=20, confidence=0.999)
    assert rate.low <= 200.0 <= rate.high


def test_mmpp_limits():
    with pytest.raises(ConfigError, match="cv > 1"):
        Bursty(10.0, 0.8, kind="mmpp")
    with pytest.raises(ConfigError, match="cannot reach"):
        Bursty(10.0, 50.0, kind="mmpp", burst_s=0.001, burst_fraction=0.5)
    with pytest.raises(ConfigError, match="kind"):
        Bursty(10.0, 2.0, kind="pareto")

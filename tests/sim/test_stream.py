"""Streaming statistics: log-bucketed percentiles within their stated error, bounded memory."""

import math

import numpy as np
import pytest
from scipy import stats

from recsys.metrics_latency import (
    Histogram,
    hist_index,
    hist_relative_error,
    hist_size,
    histogram_summary_ms,
    latency_summary_ms,
)
from recsys.sim import fast
from recsys.sim import kernel as K
from recsys.sim.engine import StageSpec, simulate, stage_streams
from recsys.sim.results import RunInfo
from recsys.sim.service import BatchSampler, Exponential, LogNormal
from recsys.sim.stream import SUB, TS_SUB, batch_of
from recsys.sim.workload import Poisson

QS = (0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0)
ALPHA = hist_relative_error(SUB)


def _samples(rng):
    n = 20_000
    waits = rng.exponential(0.003, n)
    waits[rng.random(n) < 0.4] = 0.0  # many requests never wait
    return {
        "lognormal": rng.lognormal(math.log(0.01), 0.8, n),
        "waits_with_zeros": waits,
        "deterministic": np.full(n, 0.0123),
        "two_modes": np.concatenate([rng.normal(0.005, 1e-4, n), rng.normal(2.0, 0.1, 50)]),
        "wide": 10.0 ** rng.uniform(-8, 4, n),
    }


def test_error_bound_constants():
    assert pytest.approx(1 / 512) == ALPHA
    assert hist_size(SUB) == 2 + 51 * SUB


@pytest.mark.parametrize(
    "kind", ["lognormal", "waits_with_zeros", "deterministic", "two_modes", "wide"]
)
def test_percentiles_within_the_stated_relative_error(kind):
    values = _samples(np.random.default_rng(1))[kind]
    exact = np.percentile(values, QS)
    estimate = Histogram.of(values).quantiles(QS)
    # |estimate - exact| <= alpha * exact, plus the zero bucket's width for tiny values.
    assert np.all(np.abs(estimate - exact) <= ALPHA * exact + 2.0 ** (K.HIST_MIN_EXP - 1))
    assert estimate[0] == values.min() and estimate[-1] == values.max()  # clamped, exact


def test_compiled_bucket_matches_the_numpy_formula():
    rng = np.random.default_rng(2)
    values = np.concatenate(
        [
            [0.0, 1e-300, 2.0**-30, 2.0**-30 * 0.999, 1.0, 0.5, 0.75, 2.0**21, 2.0**22, 1e300],
            10.0 ** rng.uniform(-12, 8, 5000),
        ]
    )
    for sub, shift in ((SUB, K.SHIFT), (TS_SUB, K.TS_SHIFT)):
        size = hist_size(sub)
        got = np.array([K.bucket(v, sub, shift, size) for v in values])
        np.testing.assert_array_equal(got, hist_index(values, sub))


def test_merge_and_fraction():
    rng = np.random.default_rng(3)
    a, b = rng.exponential(1.0, 1000), rng.exponential(2.0, 3000)
    merged = Histogram.of(a).merge(Histogram.of(b))
    both = np.concatenate([a, b])
    np.testing.assert_array_equal(merged.counts, Histogram.of(both).counts)
    assert merged.total == pytest.approx(both.sum())
    assert merged.n == 4000
    # A value counts by its bucket's midpoint: the share is exact up to one bucket's worth.
    t = 1.5
    lo, hi = (np.mean(both <= t / (1 + ALPHA)), np.mean(both <= t * (1 + ALPHA)))
    assert lo <= merged.fraction_at_most(t) <= hi


def test_batch_means_summary_close_to_the_exact_one():
    rng = np.random.default_rng(4)
    values_ms = rng.lognormal(math.log(20.0), 0.6, 100_000)
    k = 20
    exact = latency_summary_ms(values_ms, n_batches=k)
    batches = [Histogram.of(b / 1000.0) for b in np.array_split(values_ms, k)]
    streamed = histogram_summary_ms(batches)
    t = stats.t.ppf(0.975, df=k - 1)
    per_batch_max = max(np.percentile(b, 99.9) for b in np.array_split(values_ms, k))
    for key in ("p50", "p90", "p95", "p99"):
        assert abs(streamed[key] - exact[key]) <= ALPHA * exact[key]
        # Each batch estimate moves by at most alpha of itself, so the interval's half-width
        # moves by at most t * alpha * max / sqrt(k - 1).
        slack = ALPHA * exact[key] + t * ALPHA * per_batch_max / math.sqrt(k - 1)
        assert abs(streamed[f"{key}_ci_low"] - exact[f"{key}_ci_low"]) <= slack
        assert abs(streamed[f"{key}_ci_high"] - exact[f"{key}_ci_high"]) <= slack
    assert math.isnan(streamed["p999_ci_low"]) == math.isnan(exact["p999_ci_low"])
    assert streamed["mean"] == pytest.approx(exact["mean"], rel=1e-12)
    assert streamed["n"] == exact["n"] == 100_000


def test_batches_are_cut_like_array_split():
    for n, k in ((100, 20), (101, 20), (7, 20), (1000, 3)):
        expected = np.concatenate(
            [np.full(len(part), i) for i, part in enumerate(np.array_split(np.arange(n), k))]
        )
        np.testing.assert_array_equal(batch_of(np.arange(n), n, k), expected)


def _pipeline():
    return [
        StageSpec("retrieval", Exponential(2.0), replicas=2, max_batch=4, max_wait_ms=1.0),
        StageSpec("ranking", LogNormal(6.0, 0.5, per_item_ms=0.5), replicas=3, max_batch=8,
                  max_wait_ms=2.0, network_ms=0.5),
    ]  # fmt: skip


def test_record_false_keeps_no_records_and_is_close_to_exact():
    arrivals = Poisson(500.0).arrivals(np.random.default_rng(0), n_requests=100_000)
    warmup = float(arrivals[2000])
    exact = simulate(arrivals, _pipeline(), seed=2, warmup_s=warmup)
    streamed = simulate(arrivals, _pipeline(), seed=2, warmup_s=warmup, record=False)
    assert streamed.records is None and streamed.e2e_ms.size == 0
    assert streamed.info.engine == exact.info.engine == "numba-events"
    assert streamed.requests == exact.requests
    assert streamed.completed == exact.completed and streamed.dropped == exact.dropped == 0
    for key in ("p50", "p90", "p95", "p99", "p999"):
        assert (
            abs(streamed.latency_ms[key] - exact.latency_ms[key]) <= ALPHA * exact.latency_ms[key]
        )
    assert streamed.latency_ms["mean"] == pytest.approx(exact.latency_ms["mean"], rel=1e-9)
    for a, b in zip(streamed.stages, exact.stages, strict=True):
        assert a.mean_wait_ms == pytest.approx(b.mean_wait_ms, rel=1e-9)
        assert a.mean_batch == pytest.approx(b.mean_batch, rel=1e-9)
        assert a.queue_growth_per_s == pytest.approx(b.queue_growth_per_s, rel=1e-6, abs=1e-9)
        assert (a.arrivals, a.served, a.max_queue) == (b.arrivals, b.served, b.max_queue)
        for key, value in b.latency_ms.items():
            assert abs(a.latency_ms[key] - value) <= ALPHA * value
    threshold = exact.latency_ms["p95"]
    assert streamed.sla_attainment(threshold) == pytest.approx(
        exact.sla_attainment(threshold), abs=0.01
    )
    ts, ts_exact = streamed.timeseries, exact.timeseries
    assert ts["arrivals"].tolist() == ts_exact["arrivals"].tolist()
    assert ts["ok"].tolist() == ts_exact["ok"].tolist()
    np.testing.assert_allclose(ts["p99_ms"], ts_exact["p99_ms"], rtol=hist_relative_error(TS_SUB))


def _state_bytes(n_requests):
    arrivals = Poisson(500.0).arrivals(np.random.default_rng(0), n_requests=n_requests)
    stages = _pipeline()
    info = RunInfo(0, 0.0, float(arrivals[-1]), 0.0, 20, 0.95, 3600.0, "x")
    samplers = [
        BatchSampler(s.service, r) for s, r in zip(stages, stage_streams(0, 2), strict=True)
    ]
    run = fast._Run(arrivals, stages, samplers, info, record=False)
    run.loop(None)
    arrays = [*run.st, *run.acc, *run.rec]
    return sum(a.nbytes for a in arrays)


def test_streaming_memory_does_not_grow_with_the_run():
    # Everything the compiled engine keeps besides the arrivals themselves: the same for
    # 10k and 200k requests (one time bin of an hour in both).
    assert _state_bytes(10_000) == _state_bytes(200_000)

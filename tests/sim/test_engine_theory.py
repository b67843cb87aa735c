"""The engine against closed forms of queueing theory.

Tolerances come from the sample: each simulated value carries a batch-means interval at
99.9% confidence (20 batches of consecutive customers, each far longer than the queue's
correlation time), and the analytic value must lie inside it. Seeds are fixed, so the tests
are deterministic; the 99.9% level says how unlucky a seed would have to be to fail.
"""

import math

import numpy as np
import pytest

from recsys.metrics_latency import batch_ci
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.replications import simulate_replications
from recsys.sim.service import Deterministic, Exponential
from recsys.sim.validate import validate_queue
from recsys.sim.workload import Poisson

N = 200_000
CONFIDENCE = 0.999


def _check(report):
    for name, m in report["metrics"].items():
        assert m["within_ci"] is not False, (name, m)
    assert report["all_within_ci"]


def test_mmc_against_erlang_c():
    # M/M/4 at utilisation 0.8: P(wait), mean wait, waiting-time p50/p90/p99, Little's law.
    report = validate_queue(
        "mmc", arrival_rate_qps=320.0, mean_service_ms=10.0, servers=4,
        n_requests=N, seed=1, confidence=CONFIDENCE, quantiles=(50, 90, 99),
    )  # fmt: skip
    _check(report)
    assert set(report["metrics"]) >= {"p_wait", "mean_wait_ms", "wait_p99_ms", "mean_queue_length"}
    assert report["metrics"]["p_wait"]["analytic"] == pytest.approx(0.5964, abs=1e-4)


def test_md1_against_its_exact_waiting_time_distribution():
    report = validate_queue(
        "md1", arrival_rate_qps=80.0, mean_service_ms=10.0,
        n_requests=N, seed=2, confidence=CONFIDENCE, quantiles=(50, 90, 99),
    )  # fmt: skip
    _check(report)
    assert report["metrics"]["mean_wait_ms"]["analytic"] == pytest.approx(20.0)


@pytest.mark.parametrize(("family", "cv"), [("gamma", 0.5), ("lognormal", 1.5)])
def test_mg1_against_pollaczek_khinchine(family, cv):
    report = validate_queue(
        "mg1", arrival_rate_qps=70.0, mean_service_ms=10.0, cv=cv, service_family=family,
        n_requests=N, seed=3, confidence=CONFIDENCE,
    )  # fmt: skip
    _check(report)


def test_utilisation_is_the_offered_load():
    # Realised utilisation = total service / (c * window); its relative standard error from
    # arrival and service noise is about sqrt((1 + cv^2) / n) (cv = 1 for exponential).
    lam, mean_s, c, n = 300.0, 0.01, 4, 100_000
    arrivals = Poisson(lam).arrivals(np.random.default_rng(4), n_requests=n)
    result = simulate(
        arrivals, [StageSpec("s", Exponential(mean_s * 1000), replicas=c)], seed=4, record=False
    )
    rho = lam * mean_s / c
    assert abs(result.stages[0].utilization / rho - 1) < 5 * math.sqrt(2 / n)
    assert result.stages[0].offered_load == pytest.approx(result.offered_qps * mean_s / c)
    assert not result.unstable


def test_littles_law_holds_with_batching():
    # No closed form for a batching stage with max_wait, but Little's law (mean queue = rate x
    # mean wait) must still hold; Poisson arrivals see the time-average queue (PASTA). The
    # per-request difference queue_i - lam * wait_i has mean 0; its batch-means interval must
    # contain 0.
    lam = 800.0
    arrivals = Poisson(lam).arrivals(np.random.default_rng(5), n_requests=N)
    stage = StageSpec(
        "s", Deterministic(4.0, per_item_ms=1.0), replicas=2, max_batch=8, max_wait_ms=3.0
    )
    result = simulate(arrivals, [stage], seed=5, warmup_s=float(arrivals[5000]))
    rec = result.records[result.records["arrival_s"] >= arrivals[5000]]
    diff = rec["s_queue_len"].to_numpy() - lam * rec["s_wait_ms"].to_numpy() / 1000
    ci = batch_ci(diff, np.mean, n_batches=20, confidence=CONFIDENCE)
    assert ci.low <= 0.0 <= ci.high
    assert result.stages[0].mean_batch > 1.5


def test_independent_replications_cover_the_mm1_sojourn_percentiles():
    # M/M/1 sojourn (wait + service) is exponential with rate mu - lam, so its q-quantile is
    # -ln(1 - q) / (mu - lam): end-to-end percentiles have a closed form here.
    lam, mu = 70.0, 100.0
    reps = simulate_replications(
        Poisson(lam), [StageSpec("s", Exponential(1000 / mu))], n_replications=10, seed=7,
        n_requests=20_000, warmup_requests=1000, confidence=CONFIDENCE,
    )  # fmt: skip
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        truth_ms = -math.log(1 - q) / (mu - lam) * 1000
        assert reps.latency_ms[f"{key}_ci_low"] <= truth_ms <= reps.latency_ms[f"{key}_ci_high"]
    assert reps.to_dict()["n_replications"] == 10

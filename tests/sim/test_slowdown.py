"""A machine whose speed drifts: each batch's service draw is scaled by the factor of the window
it starts in. Checked on hand-computed event times and, for windows far longer than the
queue's relaxation time, against the quasi-static M/D/1 mean wait (the window-average of
Pollaczek-Khinchine at each window's load)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.metrics_latency import batch_ci
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.select import choose_engine
from recsys.sim.service import Deterministic
from recsys.sim.slowdown import Slowdown, block_draws, bootstrap_path
from recsys.sim.workload import Poisson


@pytest.mark.parametrize("engine", ["simpy", "naive"])
def test_a_batch_takes_the_factor_of_the_window_it_starts_in(engine):
    # 1 ms batches; windows of 10 ms at speed factors 1, 3, 0.5. Request 0 starts at 0 (1 ms),
    # request 1 at 9.5 ms, still in the first window (1 ms, done 10.5), request 2 waits for it
    # and starts at 10.5 in the second window (3 ms, done 13.5), request 3 at 25 ms (0.5 ms),
    # and request 4 at 40 ms, after the path's end, keeps the last factor.
    slow = Slowdown(0.010, np.array([1.0, 3.0, 0.5]))
    stage = StageSpec("s", Deterministic(1.0), slowdown=slow)
    arrivals = np.array([0.0, 0.0095, 0.0100, 0.025, 0.040])
    rec = simulate(arrivals, [stage], engine=engine).records
    np.testing.assert_allclose(rec["s_service_ms"].to_numpy(), [1.0, 1.0, 3.0, 0.5, 0.5])
    np.testing.assert_allclose(rec["done_s"].to_numpy() * 1000, [1.0, 10.5, 13.5, 25.5, 40.5])


def test_stages_given_one_path_share_the_machines_speed():
    slow = Slowdown(0.010, np.array([2.0, 1.0]))
    stages = [
        StageSpec("a", Deterministic(1.0), slowdown=slow),
        StageSpec("b", Deterministic(2.0), slowdown=slow),
    ]
    rec = simulate(np.array([0.0, 0.020]), stages).records
    np.testing.assert_allclose(rec["a_service_ms"].to_numpy(), [2.0, 1.0])
    np.testing.assert_allclose(rec["b_service_ms"].to_numpy(), [4.0, 2.0])


def test_the_compiled_engine_leaves_slowdown_to_simpy():
    stages = [StageSpec("s", Deterministic(1.0), slowdown=Slowdown(1.0, np.array([1.0])))]
    assert choose_engine(stages, engine="auto") == "simpy"
    with pytest.raises(ConfigError, match="slow it down"):
        choose_engine(stages, engine="fast")


@pytest.mark.parametrize(
    ("window_s", "factors", "match"),
    [
        (0.0, [1.0], "window_s"),
        (1.0, [], "non-empty"),
        (1.0, [1.0, 0.0], "> 0"),
        (1.0, [1.0, np.nan], "finite"),
    ],
)
def test_bad_slowdowns_are_refused(window_s, factors, match):
    with pytest.raises(ConfigError, match=match):
        Slowdown(window_s, np.array(factors))


def test_block_draws_keep_runs_of_the_sequence_together():
    seq = np.arange(100.0)
    drawn = block_draws(seq, 35, np.random.default_rng(0), block=10)
    assert drawn.size == 35
    for start in range(0, 30, 10):
        run = drawn[start : start + 10]
        np.testing.assert_array_equal(np.diff(run), 1.0)  # consecutive values of seq
    path = bootstrap_path(seq + 1, 0.1, 2.0, 5, np.random.default_rng(1))
    assert path.factors.size == 21 and path.window_s == 0.1


def test_slow_and_fast_windows_average_the_quasi_static_md1_wait():
    # M/D/1, 1 ms service, 500 requests/s; the machine alternates 5 s at speed factor 0.6
    # (rho 0.3) and 5 s at 1.4 (rho 0.7). The queue relaxes in ~0.1 s, so each window is
    # near its own steady state: W = rho S / (2 (1 - rho)) with S the window's service time,
    # averaged over the windows (equal arrivals in each). The drift's mean factor is 1, yet the
    # mean wait is 76% above the unmodulated M/D/1's 0.5 ms.
    lam, s_ms = 500.0, 1.0
    factors = np.tile([0.6, 1.4], 100)

    def pk(f: float) -> float:
        rho = lam * s_ms * f / 1000
        return rho * s_ms * f / (2 * (1 - rho))

    expected = float(np.mean([pk(f) for f in (0.6, 1.4)]))
    arrivals = Poisson(lam).arrivals(np.random.default_rng(5), n_requests=500_000)
    stage = StageSpec("s", Deterministic(s_ms), slowdown=Slowdown(5.0, factors))
    result = simulate(arrivals, [stage], seed=1, record=True)
    waits = result.records["s_wait_ms"].to_numpy()
    # 20 batches of 50 s, each 5 whole slow/fast cycles: batches are close to independent.
    ci = batch_ci(waits, np.mean, n_batches=20, confidence=0.999)
    assert ci.low <= expected <= ci.high, (ci, expected)
    assert pk(1.0) < ci.low

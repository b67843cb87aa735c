"""Slow spells of the whole process: the server's clock runs slower than real time, the
simulator runs on it, and its times are mapped back (a worked D/D/1 example)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic
from recsys.sim.stalls import unwarp_records
from recsys.sim.warp import ClockWarp, WarpModel

MS = 1e-3


def test_the_server_clock_runs_at_the_inverse_of_the_windows_factor():
    # Windows of 10 ms from t = 10 ms: half speed, then usual speed, then twice as fast.
    clock = ClockWarp(10 * MS, 10 * MS, np.array([2.0, 1.0, 0.5]))
    real = np.array([0, 10, 15, 20, 30, 35, 40, 50]) * MS
    server = np.array([0, 10, 12.5, 15, 25, 35, 45, 55]) * MS
    np.testing.assert_allclose(clock.to_server(real), server)
    np.testing.assert_allclose(clock.to_real(server), real)
    assert len(clock) == 2  # windows off the usual speed
    assert clock.lost_s == pytest.approx(-5 * MS)  # 5 ms lost, 10 ms gained
    assert np.isnan(clock.to_server(np.array([np.nan]))[0])


def test_a_slow_spell_slows_the_batch_in_service_and_delays_the_arrivals_behind_it():
    """D/D/1, 1 ms service, an arrival every 2 ms; from 10 to 14 ms the whole process runs at
    a quarter of its speed (1 ms of server time)."""
    arrivals = np.arange(0, 30, 2.0) * MS
    clock = ClockWarp(10 * MS, 4 * MS, np.array([4.0]))
    run = simulate(clock.to_server(arrivals), [StageSpec("s", Deterministic(1.0))], seed=0)
    assert run.records is not None
    records = unwarp_records(run.records, clock, ["s"], arrivals)
    e2e = dict(zip(np.round(arrivals / MS).astype(int).tolist(), records["e2e_ms"], strict=True))
    # The request of 10 ms is served through the whole spell (4 ms); the one of 12 ms waits
    # for the worker until 14 ms and is served at the usual speed, the one of 14 ms waits
    # for it until 15 ms; the backlog is gone by 16 ms.
    assert [e2e[t] for t in (8, 10, 12, 14, 16)] == pytest.approx([1, 4, 3, 2, 1])
    row = records.iloc[6]
    assert row["s_enqueue_s"] == pytest.approx(12 * MS)
    assert row["s_wait_ms"] == pytest.approx(2.0)


def test_clocks_are_drawn_from_the_measured_windows_in_blocks():
    factors = np.array([1.0, 1.0, 3.0, 1.0, 0.8, 1.0])
    model = WarpModel(window_s=0.01, factors=factors, block=3)
    clock = model.path(1.0, np.random.default_rng(0))
    assert clock.factors.size == 100
    # Every drawn block is three consecutive measured windows.
    runs = clock.factors[:99].reshape(-1, 3)
    starts = [next(i for i in range(4) if np.array_equal(factors[i : i + 3], r)) for r in runs]
    assert len(starts) == runs.shape[0]
    d = model.describe()
    assert d["windows"] == 6 and d["max"] == 3.0
    assert d["slow_share"] == pytest.approx(1 / 6)
    replay = ClockWarp(0.0, 0.01, factors)
    assert WarpModel(0.01, factors, replay=replay).path(1.0, np.random.default_rng(0)) is replay


def test_bad_clocks_are_refused():
    with pytest.raises(ConfigError, match="finite and > 0"):
        ClockWarp(0.0, 0.01, np.array([1.0, 0.0]))
    with pytest.raises(ConfigError, match="window_s"):
        ClockWarp(0.0, 0.0, np.array([1.0]))
    with pytest.raises(ConfigError, match="at least one"):
        WarpModel(0.01, np.empty(0))
    with pytest.raises(ConfigError, match="block"):
        WarpModel(0.01, np.ones(3), block=0)

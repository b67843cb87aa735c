"""The machine's drift, estimated from a load test's batches: window factors that follow a
known speed path, shrunk to nothing where there is no drift, and divided out of the work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError
from recsys.loadtest.drift import estimate_drift

WINDOW_S = 0.1


def _batches(path: np.ndarray, seed: int = 0, per_s: float = 600.0) -> pd.DataFrame:
    """Two stages' batches over ``path.size`` windows: work = base x lognormal(cv 0.4) x the
    path's factor in the batch's window."""
    rng = np.random.default_rng(seed)
    span = path.size * WINDOW_S
    n = int(per_s * span)
    ready = np.sort(rng.uniform(0.0, span, n))
    stage = rng.choice(["retrieval", "ranking"], n)
    warm = rng.random(n) < 0.4
    base = np.where(stage == "retrieval", 0.3, 0.9) * np.where(warm, 0.8, 1.0)
    sigma = np.sqrt(np.log(1 + 0.4**2))
    noise = rng.lognormal(-(sigma**2) / 2, sigma, n)
    window = np.minimum((ready // WINDOW_S).astype(int), path.size - 1)
    return pd.DataFrame(
        {
            "stage": stage,
            "batch_size": 1,
            "warm": warm,
            "ready_s": ready,
            "work_ms": base * noise * path[window],
        }
    )


def _path(sd: float, seed: int = 1, windows: int = 200, block: int = 10) -> np.ndarray:
    """A speed path that holds a level for ``block`` windows (1 s): mean 1, spread ``sd``."""
    z = np.random.default_rng(seed).standard_normal(windows // block)
    return np.repeat(1.0 + sd * (z - z.mean()) / z.std(), block)


def test_window_factors_follow_the_machines_speed():
    path = _path(0.15)
    drift, out = estimate_drift(_batches(path), WINDOW_S)
    assert drift.factors.size == path.size
    # Signal sd 0.15 against window noise 0.4 / sqrt(60) = 0.05: correlation ~0.95.
    assert np.corrcoef(drift.factors, path)[0, 1] > 0.9
    assert drift.cv == pytest.approx(np.std(path), rel=0.25)
    # ~60 batches per window with cv 0.4: the noise explains a small share of the spread.
    assert drift.noise_share < 0.3
    # With the drift divided out, a window's mean work spreads by little more than its noise
    # (0.05), not by the path's 0.15.
    window = np.minimum((out["ready_s"] // WINDOW_S).astype(int), path.size - 1)
    ratio = out["work_ms"] / out.groupby(["stage", "warm"])["work_ms"].transform("mean")
    left = ratio.groupby(window).mean().to_numpy()
    assert np.std(left) < 0.4 / np.sqrt(60) * 1.2


def test_no_drift_shrinks_to_a_steady_machine():
    drift, _ = estimate_drift(_batches(np.ones(200), seed=3), WINDOW_S)
    # Raw window means still spread by the noise (0.4 / sqrt(60) ~ 5%); shrunk, ~nothing.
    assert drift.raw_cv > 0.03
    assert drift.cv < 0.01
    assert drift.noise_share > 0.8


def test_factors_average_one_over_batches():
    batches = _batches(_path(0.2, seed=4) * 1.5, seed=5)
    _, out = estimate_drift(batches, WINDOW_S)
    assert out["drift"].mean() == pytest.approx(1.0, abs=1e-9)
    assert out["work_ms"].sum() == pytest.approx(batches["work_ms"].sum(), rel=0.05)


def test_bad_windows_and_empty_probes_are_refused():
    with pytest.raises(ConfigError, match="window"):
        estimate_drift(_batches(np.ones(5)), 0.0)
    with pytest.raises(ConfigError, match="no batches"):
        estimate_drift(_batches(np.ones(5)).iloc[:0], WINDOW_S)


def test_the_measured_path_replays_in_time_and_fills_unseen_windows_between_neighbours():
    path = np.repeat([1.0, 1.5, 0.8, 1.2], 5)  # 20 windows, 4 plateaus of 0.5 s
    batches = _batches(path, per_s=6000.0)
    # An interleaved probe: only every other window has batches.
    window = (batches["ready_s"] // WINDOW_S).astype(int)
    drift, _ = estimate_drift(batches[window % 2 == 0], WINDOW_S)
    replay = drift.replay_path(duration_s=path.size * WINDOW_S)
    level = path / path.mean()
    for i in (1, 3, 7, 12, 17):  # windows inside a plateau, with and without batches
        assert replay.factor((i + 0.5) * WINDOW_S) == pytest.approx(level[i], rel=0.08)
    # An unseen window between two measured ones of different levels lies between them.
    between = replay.factor(5.5 * WINDOW_S)
    assert min(level[4], level[6]) - 0.05 <= between <= max(level[4], level[6]) + 0.05

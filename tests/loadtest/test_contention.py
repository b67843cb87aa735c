"""Fitting how much co-located stages slow each other, from the batches of a load test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.loadtest.contention import alone_work, fit_contention, overlap


def _batches(rows):
    return pd.DataFrame(rows, columns=["stage", "ready_s", "release_s"]).assign(
        hold_ms=lambda f: (f["release_s"] - f["ready_s"]) * 1000
    )


def test_overlap_is_the_mean_number_of_other_batches_in_service():
    # a: 0-4; b: 2-4 (inside a's second half); c: 10-11 alone.
    frame = _batches([("x", 0.0, 4.0), ("y", 2.0, 4.0), ("x", 10.0, 11.0)])
    np.testing.assert_allclose(overlap(frame), [0.5, 1.0, 0.0])


def test_the_slowdown_is_recovered_from_hold_times():
    # hold = work (1 + c k), c = 0.6, work ~ 1 ms (noisy), k uniform in [0, 1.5].
    rng = np.random.default_rng(0)
    k = rng.uniform(0, 1.5, 4000)
    work = rng.gamma(20, 1 / 20, 4000)
    warm = rng.random(4000) < 0.5
    hold = work * (1 + 0.6 * k)
    assert fit_contention(hold, k, warm) == pytest.approx(0.6, abs=0.05)
    # No variation in overlap: nothing to tell, so no slowdown is claimed.
    assert fit_contention(hold, np.zeros(4000), warm) == 0.0


def test_alone_work_takes_the_slowdown_out():
    frame = _batches([("x", 0.0, 0.004), ("y", 0.002, 0.004)])
    out = alone_work(frame, {"x": 1.0, "y": 0.0})
    # x held 4 ms with 0.5 others on average: 4 / 1.5 ms alone; y is not slowed.
    np.testing.assert_allclose(out["work_ms"], [4.0 / 1.5, 2.0])

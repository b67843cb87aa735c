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
    # The rate model with one other batch at most, c = 0.6: a batch of work w that spends a
    # fraction f of its hold beside another holds d = w / (1 - f c / (1 + c)).
    rng = np.random.default_rng(0)
    c = 0.6
    f = rng.uniform(0, 1, 4000)
    work = rng.gamma(20, 1 / 20, 4000)
    warm = rng.random(4000) < 0.5
    hold = work / (1 - f * c / (1 + c))
    assert fit_contention(hold, f, warm) == pytest.approx(c, rel=0.05)
    # No variation in overlap: nothing to tell, so no slowdown is claimed.
    assert fit_contention(hold, np.zeros(4000), warm) == 0.0


def test_alone_work_takes_the_slowdown_out():
    frame = _batches([("x", 0.0, 0.004), ("y", 0.002, 0.004)])
    out = alone_work(frame, {"x": 1.0, "y": 0.0})
    # x: 2 ms alone at full speed, 2 ms beside y at half speed: 3 ms of work. y: not slowed.
    np.testing.assert_allclose(out["work_ms"], [3.0, 2.0])
    np.testing.assert_allclose(out["overlap"], [0.5, 1.0])


@pytest.mark.parametrize("cv", [0.2, 0.4])
def test_the_fit_recovers_what_the_simulator_was_given(cv):
    # Two co-located stages with contention 0.8 in the simulator; fitted back from its batches
    # (hold = service there), c and the mean work alone come out as given. The fit assumes
    # work does not depend on how much company a batch gets: true for work as steady as the
    # live stages' (CV 0.2-0.5); with exponential work in a tandem it is off by up to 50%
    # (longer batches collect more company), see recsys/loadtest/contention.py.
    from recsys.sim.engine import StageSpec, simulate
    from recsys.sim.service import Gamma
    from recsys.sim.workload import Poisson

    stages = [
        StageSpec("a", Gamma(0.5, cv), network_ms=0.0, contention=0.8),
        StageSpec("b", Gamma(1.0, cv), network_ms=0.0, contention=0.8),
    ]
    arrivals = Poisson(500.0).arrivals(np.random.default_rng(4), n_requests=20_000)
    rec = simulate(arrivals, stages, seed=1).records
    rows = []
    for s in ("a", "b"):
        b = rec.drop_duplicates(f"{s}_start_s")
        start = b[f"{s}_start_s"].to_numpy()
        rows.append(
            pd.DataFrame(
                {"stage": s, "ready_s": start, "release_s": start + b[f"{s}_service_ms"] / 1e3}
            )
        )
    frame = _batches(pd.concat(rows, ignore_index=True).to_numpy().tolist())
    f = overlap(frame)
    warm = np.zeros(len(frame), dtype=bool)
    for s, mean_ms in (("a", 0.5), ("b", 1.0)):
        sel = (frame["stage"] == s).to_numpy()
        c = fit_contention(frame["hold_ms"].to_numpy()[sel], f[sel], warm[sel])
        assert c == pytest.approx(0.8, rel=0.15)
        work = alone_work(frame, {"a": 0.8, "b": 0.8})["work_ms"].to_numpy()[sel]
        assert work.mean() == pytest.approx(mean_ms, rel=0.05)

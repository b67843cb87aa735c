"""Whole-process stalls: the server's clock stands still, the simulator runs on it, and its
times are mapped back to real time (a worked D/D/1 example and the Poisson stall process)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic
from recsys.sim.stalls import StallModel, StallPath, poisson_path, unwarp_records


def test_the_server_clock_stands_still_during_a_stall():
    path = StallPath(np.array([1.0, 2.0]), np.array([0.5, 0.25]))
    real = np.array([0.5, 1.0, 1.2, 1.5, 1.7, 2.1, 3.0])
    # Times inside a stall map to its end; after it, the stall's length is gone.
    np.testing.assert_allclose(path.to_server(real), [0.5, 1.0, 1.0, 1.0, 1.2, 1.5, 2.25])
    # Back to real time: an event on the server's clock happens after every stall that
    # began at or before it (an arrival during a stall is received when it ends).
    np.testing.assert_allclose(
        path.to_real(np.array([0.5, 0.999, 1.0, 1.2, 1.5])), [0.5, 0.999, 1.5, 1.7, 2.25]
    )
    np.testing.assert_allclose(path.overlap_s(np.array([0.9]), np.array([2.3])), [0.75])
    assert path.total_s == pytest.approx(0.75)


def test_overlapping_stalls_merge_and_bad_ones_are_refused():
    path = StallPath(np.array([2.0, 1.0, 1.2]), np.array([0.1, 0.5, 0.5]))
    np.testing.assert_allclose(path.starts_s, [1.0, 2.0])
    np.testing.assert_allclose(path.durations_s, [0.7, 0.1])
    with pytest.raises(ConfigError, match="durations must be >= 0"):
        StallPath(np.array([1.0]), np.array([-0.1]))
    with pytest.raises(ConfigError, match="same length"):
        StallPath(np.array([1.0, 2.0]), np.array([0.1]))
    with pytest.raises(ConfigError, match="rate"):
        StallModel(rate_per_s=-1.0, durations_s=np.array([0.01]))


def test_a_stall_holds_the_batch_in_service_and_the_arrivals_behind_it():
    """D/D/1, 1 ms service, an arrival every 2 ms; the process stalls 5 ms at t = 10.5 ms.

    The request of t = 10 ms is in service and ends 5 ms late (6 ms); those of 12 and 14 ms
    are received at 15.5 ms and queue behind it; the backlog drains by 1 ms per arrival."""
    ms = 1e-3
    arrivals = np.arange(0, 30, 2.0) * ms
    path = StallPath(np.array([10.5 * ms]), np.array([5.0 * ms]))
    spec = StageSpec(name="s", service=Deterministic(1.0))
    run = simulate(path.to_server(arrivals), [spec], seed=0)
    assert run.records is not None
    records = unwarp_records(run.records, path, ["s"], arrivals)
    e2e = dict(zip(np.round(arrivals / ms).astype(int).tolist(), records["e2e_ms"], strict=True))
    assert [e2e[t] for t in (8, 10, 12, 14, 16, 18, 20, 22)] == pytest.approx(
        [1, 6, 5, 4, 3, 2, 1, 1]
    )
    # The request of 12 ms waited in the queue from the stall's end until 16 ms.
    row = records.iloc[6]
    assert row["s_enqueue_s"] == pytest.approx(15.5 * ms)
    assert row["s_wait_ms"] == pytest.approx(0.5)
    # The batch in service across the stall took 6 ms of real time.
    assert records.iloc[5]["s_service_ms"] == pytest.approx(6.0)


def test_poisson_stalls_come_at_the_measured_rate_with_the_measured_lengths():
    rng = np.random.default_rng(3)
    lengths = np.array([0.004, 0.010, 0.030])
    path = poisson_path(2.0, lengths, 2000.0, rng)
    # 4000 expected stalls (a few merge where they overlap): within 4 sd of sqrt(4000) = 63.
    assert abs(len(path) - 4000) < 4 * 63 + 20
    # Unmerged stalls keep a measured length; merged ones are longer than the shortest.
    assert np.isin(np.round(path.durations_s, 6), lengths).mean() > 0.95
    # Stalled share = rate x mean length = 2 x 14.7 ms = 2.9% of the time.
    assert path.total_s / 2000.0 == pytest.approx(2.0 * lengths.mean(), rel=0.05)
    model = StallModel(rate_per_s=0.0, durations_s=lengths)
    assert len(model.path(100.0, rng)) == 0

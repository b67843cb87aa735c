"""Finding whole-process stalls in a load test's trail of timestamps, and cutting them out.

The worked example: a D/D/1 server (1 ms service, an arrival every 2 ms) whose process stands
still for 5 ms at t = 10.5 ms, simulated on the server's clock and mapped back to real time,
read as if a load test had recorded it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.loadtest.model import calibrated_model, simulate_pooled
from recsys.loadtest.run import LoadTestResult
from recsys.loadtest.server import LiveStage
from recsys.loadtest.stalls import destall, detect_stalls
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic
from recsys.sim.stalls import StallModel, StallPath, unwarp_records

MS = 1e-3


def _run(stalls: StallPath, n: int = 15, gap_ms: float = 2.0) -> LoadTestResult:
    arrivals = np.arange(n) * gap_ms * MS
    sim = simulate(stalls.to_server(arrivals), [StageSpec("s", Deterministic(1.0))], seed=0)
    assert sim.records is not None
    records = unwarp_records(sim.records, stalls, ["s"], arrivals)
    start = records["s_start_s"].to_numpy()
    release = start + records["s_service_ms"].to_numpy() / 1000.0
    return LoadTestResult(
        records=records,
        stages=["s"],
        warmup_s=0.0,
        status="ok",
        message="",
        lateness_ms=np.zeros(n),
        wall_s=float(arrivals[-1]),
        ready_s={"s": start.copy()},  # a worker was free: the batch could start then
        cpu_s={"s": np.full(n, 1e-3)},
        release_s={"s": release},
        warm={"s": np.zeros(n, bool)},
    )


def test_a_stall_is_the_part_of_a_late_requests_wait_in_which_nothing_happened():
    run = _run(StallPath(np.array([10.5 * MS]), np.array([5.0 * MS])))
    found = detect_stalls(run, min_ms=2.0)
    # The request due at 12 ms waited until 15.5 ms; the last thing the server did before
    # was starting the batch of 10 ms. The stall is seen from the first moment work waited.
    assert len(found) == 1
    assert found.starts_s[0] == pytest.approx(12.0 * MS)
    assert found.durations_s[0] == pytest.approx(3.5 * MS)
    # Nothing is found in a run without stalls, nor below the threshold.
    assert len(detect_stalls(_run(StallPath(np.empty(0), np.empty(0))), min_ms=0.5)) == 0
    assert len(detect_stalls(run, min_ms=4.0)) == 0


def test_destalling_cuts_the_stall_out_of_every_wait_and_service():
    stall = StallPath(np.array([10.5 * MS]), np.array([5.0 * MS]))
    run = _run(stall)
    clean = destall(run, stall)
    # On the server's clock every batch takes its 1 ms and every request is received at
    # once; what stays is the clump the stall made: the requests due at 12 and 14 ms reach
    # the server together, at the moment (10.5 ms on its clock) it stood still, and queue.
    np.testing.assert_allclose(clean.hold_ms("s"), 1.0, atol=1e-9)
    np.testing.assert_allclose(clean.ingress_ms(), 0.0, atol=1e-9)
    expected = [1.0] * 6 + [1.5, 2.5, 3.0, 2.0] + [1.0] * 5
    np.testing.assert_allclose(clean.records["e2e_ms"], expected, atol=1e-9)


def test_the_calibrated_model_puts_the_stalls_back_where_every_stage_feels_them():
    stall = StallPath(np.array([10.5 * MS]), np.array([5.0 * MS]))
    run = _run(stall)
    profile = pd.DataFrame(
        {"stage": "s", "kind": "s", "batch_size": 1, "n_candidates": 0, "service_ms": [1.0] * 5}
    )
    model, _ = calibrated_model(run, profile, ["s"], min_samples=1, stall_min_ms=2.0)
    assert model.stalls is not None
    assert model.stalls.durations_s == pytest.approx([3.5 * MS])
    # One stall in the 28 ms the run spans.
    assert model.stalls.rate_per_s == pytest.approx(1 / (28 * MS))
    # Replaying the stall the run really had reproduces its latencies.
    arrivals = run.records["arrival_s"].to_numpy()
    replay = StallModel(0.0, np.empty(0), replay=stall)
    model = type(model)(services={"s": Deterministic(1.0)}, stalls=replay)
    lat, _ = simulate_pooled(
        arrivals, [LiveStage("s", run=None)], model, seed=0, warmup_s=0.0, replications=1
    )
    np.testing.assert_allclose(lat["end_to_end"], run.records["e2e_ms"], atol=1e-9)

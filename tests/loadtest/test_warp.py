"""Finding the slow spells of a load test and fitting the model on the server's clock.

The worked example: a D/D/1 server (1 ms service, an arrival every 2 ms) whose process runs
at a quarter of its speed from 8 to 12 ms, simulated on the server's clock and mapped back
to real time, read as if a load test had recorded it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError
from recsys.loadtest.model import SimModel, calibrated_model, simulate_pooled
from recsys.loadtest.run import LoadTestResult
from recsys.loadtest.server import LiveStage
from recsys.loadtest.stalls import destall
from recsys.loadtest.warp import estimate_warp, in_service
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic
from recsys.sim.stalls import unwarp_records
from recsys.sim.warp import ClockWarp, WarpModel

MS = 1e-3
SPELL = ClockWarp(8 * MS, 4 * MS, np.array([4.0]))


def _run(clock: ClockWarp, n: int = 200, gap_ms: float = 2.0) -> LoadTestResult:
    arrivals = np.arange(n) * gap_ms * MS
    sim = simulate(clock.to_server(arrivals), [StageSpec("s", Deterministic(1.0))], seed=0)
    assert sim.records is not None
    records = unwarp_records(sim.records, clock, ["s"], arrivals)
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
        ready_s={"s": start.copy()},
        cpu_s={"s": np.full(n, 1e-3)},
        release_s={"s": release},
        warm={"s": np.zeros(n, bool)},
    )


def test_a_slow_spell_is_the_window_that_took_longer_than_usual():
    run = _run(SPELL)
    clock, seen = estimate_warp(run, np.ones(200, bool), window_s=4 * MS, shrink_n=0.0)
    usual = (199 * 1.0 + 4.0) / 200  # the mean batch, the slow one included
    # The batch due at 8 ms held its worker 4 ms: its window ran 4 / usual times slower;
    # every other window did its batches in 1 / usual of their usual time.
    spell = round((8 * MS - clock.origin_s) / clock.window_s)
    assert clock.factors[spell] == pytest.approx(4.0 / usual)
    others = np.delete(clock.factors, spell)
    np.testing.assert_allclose(others, 1.0 / usual)
    assert seen.size == clock.factors.size
    # On the server's clock the slow batch takes what a batch usually takes.
    on_server = destall(run, clock)
    assert on_server.hold_ms("s")[4] == pytest.approx(usual)
    # A window of few items is partly noise: shrunk by n / (n + shrink_n); this one has
    # three (the batch, and the two requests received in it, both at once as usual).
    shrunk, _ = estimate_warp(run, np.ones(200, bool), window_s=4 * MS, shrink_n=1.0)
    assert shrunk.factors[spell] == pytest.approx(1.0 + (4.0 / usual - 1.0) * 3 / 4)


def test_ingress_is_held_against_requests_that_arrived_with_as_much_in_service():
    batches = pd.DataFrame({"ready_s": [1.0, 1.5, 4.0], "release_s": [2.0, 3.0, 5.0]})
    t = np.array([0.5, 1.2, 1.7, 2.5, 3.5, 4.5])
    assert in_service(batches, t).tolist() == [0, 1, 2, 1, 0, 1]


def test_the_calibrated_model_puts_the_spells_back_where_every_stage_feels_them():
    run = _run(SPELL)
    profile = pd.DataFrame(
        {"stage": "s", "kind": "s", "batch_size": 1, "n_candidates": 0, "service_ms": [1.0] * 5}
    )
    model, _ = calibrated_model(run, profile, ["s"], min_samples=1, warp_window_ms=4.0)
    assert model.warp is not None
    assert model.warp.factors.max() > 2.0  # the spell, shrunk by 3 / (3 + 1)
    with pytest.raises(ConfigError, match="not both"):
        calibrated_model(run, profile, ["s"], 1, warp_window_ms=4.0, stall_min_ms=2.0)
    # Replaying the clock the run really had reproduces its latencies.
    arrivals = run.records["arrival_s"].to_numpy()
    replay = SimModel(
        services={"s": Deterministic(1.0)}, warp=WarpModel(4 * MS, np.ones(1), replay=SPELL)
    )
    lat, _ = simulate_pooled(
        arrivals, [LiveStage("s", run=None)], replay, seed=0, warmup_s=0.0, replications=1
    )
    np.testing.assert_allclose(lat["end_to_end"], run.records["e2e_ms"], atol=1e-9)
    assert np.max(lat["end_to_end"]) == pytest.approx(4.0)

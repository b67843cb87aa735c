"""The in-process server follows the simulator's batching, pool, queue and timeout rules.

Stages sleep for known times, so each case has an exact simulated answer (a ``Deterministic``
service model on the same arrivals); the server must form the same batches, and start them
at the same moments up to the sleep/wake-up jitter of this machine (``TOL_S``).
"""

from __future__ import annotations

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.loadtest.run import LoadTestLimits, run_loadtest
from recsys.loadtest.server import LiveStage
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Deterministic
from tests.loadtest.conftest import sleeper

# Sleeps and thread wake-ups on a busy 2-core machine (other test workers training models):
# up to ~15 ms late over a chain of four batches. Every check below tells apart moments at
# least one 30-ms service apart.
TOL_S = 0.02
LIMITS = LoadTestLimits(max_lag_ms=1000.0)


def _both(arrivals, batch_ms, **serving):
    """Real records (sleeping stage) and simulated records (deterministic service)."""
    live = [LiveStage("s", sleeper(batch_ms), **serving)]
    real = run_loadtest(arrivals, live, list(range(len(arrivals))), limits=LIMITS)
    spec = StageSpec("s", Deterministic(batch_ms), network_ms=0.0, **serving)
    sim = simulate(np.asarray(arrivals, float), [spec])
    return real, sim.records


def test_full_batches_are_taken_at_once_without_waiting():
    arrivals = [0.05] * 6
    real, sim = _both(arrivals, 40.0, max_batch=4)
    assert real.ok, real.message
    assert real.records["s_batch_size"].tolist() == [4, 4, 4, 4, 2, 2]
    assert sim["s_batch_size"].tolist() == [4, 4, 4, 4, 2, 2]
    np.testing.assert_allclose(real.records["s_start_s"], sim["s_start_s"], atol=TOL_S)
    np.testing.assert_allclose(real.records["e2e_ms"], sim["e2e_ms"], atol=TOL_S * 1000)
    assert (real.records["s_service_ms"] >= 40.0).all()


def test_a_batch_waits_until_full_or_max_wait():
    # Three requests fill a batch at 30 ms; the fourth waits max_wait alone (until 260 ms).
    arrivals = [0.0, 0.015, 0.03, 0.2]
    real, sim = _both(arrivals, 30.0, max_batch=3, max_wait_ms=60.0)
    assert real.records["s_batch_size"].tolist() == sim["s_batch_size"].tolist() == [3, 3, 3, 1]
    np.testing.assert_allclose(sim["s_start_s"], [0.03, 0.03, 0.03, 0.26])
    np.testing.assert_allclose(real.records["s_start_s"], sim["s_start_s"], atol=TOL_S)


def test_workers_serve_in_parallel():
    real, sim = _both([0.05, 0.05], 60.0, replicas=2)
    np.testing.assert_allclose(real.records["e2e_ms"], [60.0, 60.0], atol=TOL_S * 1000)
    np.testing.assert_allclose(real.records["e2e_ms"], sim["e2e_ms"], atol=TOL_S * 1000)


def test_bounded_queue_sheds_the_newest():
    real, sim = _both([0.05] * 4, 30.0, queue_capacity=1)
    expected = ["ok", "ok", "shed", "shed"]
    assert real.records["outcome"].astype(str).tolist() == expected
    assert sim["outcome"].astype(str).tolist() == expected
    assert real.records["drop_stage"].tolist()[2:] == ["s", "s"]


def test_waiting_longer_than_the_timeout_drops_at_the_deadline():
    real, sim = _both([0.05, 0.05], 60.0, timeout_ms=20.0)
    assert real.records["outcome"].astype(str).tolist() == ["ok", "timeout"]
    assert sim["outcome"].astype(str).tolist() == ["ok", "timeout"]
    late = real.records.iloc[1]
    assert late["done_s"] == pytest.approx(late["s_enqueue_s"] + 0.020, abs=1e-9)


def test_two_stages_hand_batches_on_in_order():
    stages = [LiveStage("a", sleeper(5.0)), LiveStage("b", sleeper(5.0), max_batch=2)]
    arrivals = np.arange(20) * 0.02 + 0.01
    real = run_loadtest(arrivals, stages, list(range(20)), limits=LIMITS)
    rec = real.records
    assert (rec["outcome"] == "ok").all()
    a_end = rec["a_start_s"] + rec["a_service_ms"] / 1000
    assert (rec["b_enqueue_s"] >= a_end - 1e-9).all()
    assert (rec["done_s"] >= rec["b_start_s"] + 0.005).all()
    assert real.ready_s["b"].shape == (20,)


def test_payloads_flow_through_the_stages():
    seen = []

    def double(p):
        return [2 * x for x in p]

    def record(p):
        seen.extend(p)
        return p

    stages = [LiveStage("a", double), LiveStage("b", record)]
    run_loadtest([0.01, 0.02, 0.03], stages, [1, 2, 3], limits=LIMITS)
    assert sorted(seen) == [2, 4, 6]


def test_a_failing_stage_fails_the_run():
    def boom(p):
        raise ValueError("stage broke")

    with pytest.raises(ValueError, match="stage broke"):
        run_loadtest([0.01, 0.02], [LiveStage("a", boom)], [1, 2], limits=LIMITS)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_batch", 0), ("replicas", 0), ("max_wait_ms", -1.0), ("timeout_ms", 0.0)],
)
def test_bad_serving_settings_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        LiveStage("a", sleeper(1.0), **{field: value})

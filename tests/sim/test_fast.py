"""The compiled engine gives the SimPy engine's per-request records, exactly.

Each case runs the same arrivals and seed through both engines and compares every column of
the records with no tolerance (times are computed with the same float operations in the same
order). The cases cover what the compiled engine must replay event by event: dynamic
batching with batch timers, timeouts, shedding, several workers, network hops, several
stages, exact ties, simultaneous arrivals, an empirical service model, and overloads that
make its rings and heap grow.
"""

from functools import partial

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError
from recsys.sim import fast
from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.engine import StageSpec, simulate, stage_streams
from recsys.sim.fast import fifo_starts, simulate_fast, supports
from recsys.sim.results import RunInfo
from recsys.sim.service import (
    BatchSampler,
    Deterministic,
    EmpiricalServiceTime,
    Exponential,
    Gamma,
    LogNormal,
)
from recsys.sim.stream import StreamStats
from recsys.sim.workload import Poisson

simpy_engine = partial(simulate, engine="simpy")


def _poisson(rate_qps, n, seed=0):
    return Poisson(rate_qps).arrivals(np.random.default_rng(seed), n_requests=n)


def assert_same_results(arrivals, stages, seed=0, warmup_s=0.0):
    slow = simpy_engine(arrivals, stages, seed=seed, warmup_s=warmup_s)
    quick = simulate_fast(arrivals, stages, seed=seed, warmup_s=warmup_s)
    pd.testing.assert_frame_equal(quick.records, slow.records, rtol=0, atol=0)
    assert quick.info.engine == "numba-events"
    assert quick.info.sim_end_s == slow.info.sim_end_s
    assert quick.latency_ms == pytest.approx(slow.latency_ms, nan_ok=True)
    # Utilisation and offered load differ in the last digits: the SimPy engine integrates
    # busy time event by event, the compiled one adds each batch's overlap with the window.
    assert _approx_equal([s.to_dict() for s in quick.stages], [s.to_dict() for s in slow.stages])
    return quick


def test_hand_computed_two_servers():
    # Two servers, services 3, 1, 1, 1: the 3rd customer takes server 2 after customer 2.
    starts = fifo_starts(np.array([0.0, 0.0, 0.5, 0.6]), np.array([3.0, 1.0, 1.0, 1.0]), 2)
    assert starts.tolist() == [0.0, 0.0, 1.0, 2.0]


def test_plain_fifo_pipeline():
    stages = [
        StageSpec("retrieval", Exponential(2.0), replicas=3),
        StageSpec("ranking", LogNormal(5.0, 0.7), replicas=3, workers_per_replica=2,
                  network_ms=0.5),
    ]  # fmt: skip
    assert_same_results(_poisson(900.0, 20_000, seed=1), stages, seed=4, warmup_s=2.0)


def test_batching_timeouts_and_shedding():
    stages = [
        StageSpec("retrieval", Exponential(2.0), replicas=2, max_batch=4, max_wait_ms=1.0,
                  queue_capacity=4, timeout_ms=6.0),
        StageSpec("ranking", LogNormal(5.0, 0.8, per_item_ms=0.5), replicas=2,
                  workers_per_replica=2, max_batch=8, max_wait_ms=2.0, network_ms=0.5,
                  timeout_ms=5.0, queue_capacity=8),
    ]  # fmt: skip
    result = assert_same_results(_poisson(1800.0, 15_000, seed=3), stages, seed=5, warmup_s=1.0)
    assert result.drops["timeout"] > 30 and result.drops["shed"] > 300


def test_three_stages_with_an_empirical_profile():
    rng = np.random.default_rng(0)
    profile = EmpiricalServiceTime(
        {b: rng.gamma(4.0, (1.0 + 0.3 * b) / 4.0, size=200) for b in (1, 4, 16)}, name="rank"
    )  # batch sizes between 4 and 16 interpolate the quantiles
    stages = [
        StageSpec("a", Gamma(1.0, 0.5), replicas=2, max_batch=2, max_wait_ms=0.3),
        StageSpec("b", profile, replicas=2, max_batch=12, max_wait_ms=1.5, timeout_ms=8.0),
        StageSpec("c", Deterministic(0.4, per_item_ms=0.05), max_batch=32, network_ms=0.2),
    ]
    result = assert_same_results(_poisson(1500.0, 15_000, seed=2), stages, seed=9, warmup_s=0.5)
    assert result.stages[1].mean_batch > 2


def test_exact_ties_resolve_in_simpy_order():
    # Arrivals on a 1 ms grid and deterministic service: batch timers, completions and
    # arrivals fall on the same instants, where only SimPy's event order decides.
    arrivals = np.repeat(np.arange(3000) * 0.001, [1, 2, 1] * 1000)
    stages = [
        StageSpec("a", Deterministic(2.0, per_item_ms=0.5), replicas=2, max_batch=3,
                  max_wait_ms=1.0, timeout_ms=3.0),
        StageSpec("b", Deterministic(1.0), max_batch=4, max_wait_ms=2.0, queue_capacity=3),
    ]  # fmt: skip
    result = assert_same_results(arrivals, stages)
    assert result.dropped > 0


def test_simultaneous_arrivals_are_delivered_together():
    # A replayed trace with whole groups on one timestamp (one source event per group).
    times = np.sort(np.round(_poisson(3000.0, 6000, seed=4), 3))
    stages = [StageSpec("s", Exponential(1.0), replicas=3, max_batch=8, queue_capacity=16)]
    assert_same_results(times, stages, seed=2)


def test_overload_grows_rings_and_heap(monkeypatch):
    # Twice the capacity with no bound: the queue holds thousands; a 1 s hop keeps
    # thousands of batches in transit. Both exceed the initial ring and heap sizes.
    grown = {}
    grow = fast._Run.grow

    def spy(self):
        grow(self)
        grown.update(heap=self.st.h_t.size, queue=self.st.q_id.shape[1], hop=self.st.tr_id.shape[1])

    monkeypatch.setattr(fast._Run, "grow", spy)
    stages = [
        StageSpec("a", Exponential(1.0), replicas=2, max_batch=2),
        StageSpec("b", Exponential(2.0), replicas=1, network_ms=1000.0),
    ]
    result = assert_same_results(_poisson(5000.0, 20_000, seed=5), stages, seed=1)
    assert result.stages[1].max_queue > 2048
    assert result.unstable
    assert grown["heap"] > 2048 and grown["queue"] >= 4096 and grown["hop"] >= 2048


def test_progress_updates_do_not_change_results(monkeypatch):
    monkeypatch.setattr(fast, "_BUDGET", 97)  # return to Python every 97 events
    stages = [StageSpec("s", Exponential(1.0), replicas=2, max_batch=4, max_wait_ms=0.5)]
    arrivals = _poisson(2000.0, 5000, seed=6)
    a = simulate_fast(arrivals, stages, seed=3, progress=True)
    b = simpy_engine(arrivals, stages, seed=3)
    pd.testing.assert_frame_equal(a.records, b.records, rtol=0, atol=0)


def test_streaming_accumulators_match_the_records():
    # One run filling both the records and the streaming accumulators: the accumulators are
    # what StreamStats.from_log computes from those records (counts exactly).
    arrivals = _poisson(1800.0, 20_000, seed=3)
    stages = [
        StageSpec("r", Exponential(2.0), replicas=2, max_batch=4, max_wait_ms=1.0,
                  queue_capacity=4, timeout_ms=6.0),
        StageSpec("k", LogNormal(5.0, 0.8), replicas=3, max_batch=8, max_wait_ms=2.0,
                  network_ms=0.5, timeout_ms=5.0),
    ]  # fmt: skip
    info = RunInfo(0, float(arrivals[1000]), float(arrivals[-1]), 0.0, 20, 0.95, 2.0, "x")
    samplers = [
        BatchSampler(s.service, r) for s, r in zip(stages, stage_streams(0, 2), strict=True)
    ]
    run = fast._Run(arrivals, stages, samplers, info, record=True, stream=True)
    run.loop(None)
    assert run.log is not None
    expected = StreamStats.from_log(run.log, len(stages), info)
    for name, got in vars(run.stats).items():
        want = getattr(expected, name)
        if got.dtype.kind in "iu":
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=name)


def test_record_false_summaries_agree_across_engines():
    arrivals = _poisson(1500.0, 20_000, seed=8)
    stages = [
        StageSpec("r", Exponential(2.0), replicas=2, max_batch=4, max_wait_ms=1.0),
        StageSpec("k", LogNormal(5.0, 0.8), replicas=3, max_batch=8, timeout_ms=9.0),
    ]
    a = simulate_fast(arrivals, stages, seed=1, warmup_s=1.0, record=False)
    b = simpy_engine(arrivals, stages, seed=1, warmup_s=1.0, record=False)
    assert a.records is None and b.records is None
    da, db = a.to_dict(), b.to_dict()
    da["sim"].pop("engine"), db["sim"].pop("engine")
    assert _approx_equal(da, db)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)


def _approx_equal(a, b):
    """Equal, floats to 1e-9 (sums are accumulated in a different order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return all(_approx_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return all(_approx_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (a, b)
        return True
    assert a == b
    return True


def test_refuses_the_autoscaler():
    stages = [StageSpec("s", Deterministic(1.0), max_batch=4)]
    assert supports(stages)
    assert not supports(stages, AutoscalerSpec())
    with pytest.raises(ConfigError, match="autoscale"):
        simulate_fast([0.0, 1.0], stages, autoscaler=AutoscalerSpec())


def test_the_kernel_source_runs_as_plain_python(monkeypatch):
    # Without Numba the same source runs uncompiled (slowly) and gives the same records.
    monkeypatch.setattr(fast.K, "run", fast.K.run.py_func)
    stages = [
        StageSpec("a", Exponential(1.0), replicas=2, max_batch=3, max_wait_ms=0.5, timeout_ms=2.0),
        StageSpec("b", Exponential(1.5), max_batch=2, network_ms=0.3, queue_capacity=2),
    ]
    arrivals = _poisson(1500.0, 400, seed=7)
    slow = simpy_engine(arrivals, stages, seed=2)
    plain = simulate_fast(arrivals, stages, seed=2)
    pd.testing.assert_frame_equal(plain.records, slow.records, rtol=0, atol=0)

"""Hand-computed runs: tiny deterministic arrivals and service, exact event times.

Every case runs on all three engines (SimPy callbacks, process-per-request, compiled), which
must agree.
"""

from functools import partial

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.hardware import Hardware
from recsys.sim.service import Deterministic, Exponential


@pytest.fixture(params=["simpy", "naive", "fast"])
def run(request):
    return partial(simulate, engine=request.param)


def _col(result, name):
    return result.records[name].tolist()


def test_fifo_single_server(run):
    r = run([0.0, 0.5, 3.0], [StageSpec("s", Deterministic(1000.0))])
    assert _col(r, "s_start_s") == [0.0, 1.0, 3.0]
    assert _col(r, "s_wait_ms") == [0.0, 500.0, 0.0]
    assert _col(r, "done_s") == [1.0, 2.0, 4.0]
    assert _col(r, "e2e_ms") == [1000.0, 1500.0, 1000.0]
    assert _col(r, "s_queue_len") == [0, 0, 0]


def test_replicas_and_workers_serve_in_parallel(run):
    stage = StageSpec("s", Deterministic(1000.0), replicas=2)
    assert _col(run([0.0, 0.0, 0.0], [stage]), "done_s") == [1.0, 1.0, 2.0]
    stage = StageSpec("s", Deterministic(1000.0), replicas=1, workers_per_replica=3)
    assert _col(run([0.0, 0.0, 0.0], [stage]), "done_s") == [1.0, 1.0, 1.0]


def test_batching_without_wait_takes_what_is_queued(run):
    # The first request finds an idle worker and goes alone; the next three queue behind it
    # and leave together in one batch of 3 when the worker frees at t = 1.
    stage = StageSpec("s", Deterministic(1000.0), max_batch=3)
    r = run([0.0, 0.1, 0.2, 0.3], [stage])
    assert _col(r, "s_batch_size") == [1, 3, 3, 3]
    assert _col(r, "s_start_s") == [0.0, 1.0, 1.0, 1.0]
    assert _col(r, "done_s") == [1.0, 2.0, 2.0, 2.0]
    assert r.stages[0].mean_batch == pytest.approx(2.0)  # two batches for four requests


def test_batching_waits_for_max_wait_or_a_full_batch(run):
    # max_batch 4, max_wait 500 ms, service 100 ms + 50 ms per extra item.
    # Batch 1: head arrives at 0, only 3 have come by its deadline 0.5 -> starts at 0.5.
    # Batch 2: the 4th request arrives at 1.3, before the head's deadline 1.5 -> starts at 1.3.
    stage = StageSpec("s", Deterministic(100.0, per_item_ms=50.0), max_batch=4, max_wait_ms=500.0)
    r = run([0.0, 0.2, 0.3, 1.0, 1.1, 1.2, 1.3], [stage])
    assert _col(r, "s_batch_size") == [3, 3, 3, 4, 4, 4, 4]
    assert _col(r, "s_start_s") == pytest.approx([0.5, 0.5, 0.5, 1.3, 1.3, 1.3, 1.3])
    assert _col(r, "s_service_ms") == pytest.approx([200.0] * 3 + [250.0] * 4)
    assert _col(r, "done_s") == pytest.approx([0.7, 0.7, 0.7, 1.55, 1.55, 1.55, 1.55])


def test_timeouts_leave_at_exactly_their_deadline(run):
    # One worker busy 0..1; requests 1 and 2 give up 0.5 s after joining the queue.
    stage = StageSpec("s", Deterministic(1000.0), timeout_ms=500.0)
    r = run([0.0, 0.1, 0.2, 1.4], [stage])
    assert _col(r, "outcome") == ["ok", "timeout", "timeout", "ok"]
    assert _col(r, "done_s") == pytest.approx([1.0, 0.6, 0.7, 2.4])
    assert _col(r, "s_wait_ms") == pytest.approx([0.0, 500.0, 500.0, 0.0])
    assert _col(r, "drop_stage")[1] == "s"
    assert r.drops == {"timeout": 2, "shed": 0}
    assert r.dropped == 2
    assert r.completed == 2


def test_waiting_exactly_the_timeout_is_still_served(run):
    stage = StageSpec("s", Deterministic(1000.0), timeout_ms=500.0)
    r = run([0.0, 0.5], [stage])
    assert _col(r, "outcome") == ["ok", "ok"]
    assert _col(r, "done_s") == [1.0, 2.0]


def test_bounded_queue_sheds_and_counts(run):
    # Capacity 1: request 1 waits, requests 2 and 3 find the queue full and are shed at once.
    stage = StageSpec("s", Deterministic(1000.0), queue_capacity=1)
    r = run([0.0, 0.1, 0.2, 0.3], [stage])
    assert _col(r, "outcome") == ["ok", "ok", "shed", "shed"]
    assert _col(r, "done_s") == pytest.approx([1.0, 2.0, 0.2, 0.3])
    assert _col(r, "s_queue_len") == [0, 0, 1, 1]
    assert r.drops == {"timeout": 0, "shed": 2}
    assert r.stages[0].shed == 2
    assert r.stages[0].max_queue == 1
    zero = run([0.0, 0.1], [StageSpec("s", Deterministic(1000.0), queue_capacity=0)])
    assert _col(zero, "outcome") == ["ok", "shed"]


def test_network_latency_is_paid_into_each_stage(run):
    stages = [
        StageSpec("a", Deterministic(1000.0), network_ms=100.0),
        StageSpec("b", Deterministic(1000.0), network_ms=100.0),
    ]
    r = run([0.0], stages)
    assert _col(r, "a_enqueue_s") == pytest.approx([0.1])
    assert _col(r, "b_enqueue_s") == pytest.approx([1.2])
    assert _col(r, "e2e_ms") == pytest.approx([2200.0])


def test_a_batch_moves_on_together(run):
    # Both requests leave stage a in one batch at t = 1 and reach stage b together, so b
    # (max_wait 0) serves them as one batch as well.
    stages = [
        StageSpec("a", Deterministic(1000.0), max_batch=2),
        StageSpec("b", Deterministic(500.0), max_batch=2),
    ]
    r = run([0.0, 0.0], stages)
    assert _col(r, "b_batch_size") == [2, 2]
    assert _col(r, "done_s") == [1.5, 1.5]


def test_a_dropped_request_never_reaches_later_stages(run):
    stages = [
        StageSpec("a", Deterministic(1000.0), queue_capacity=0),
        StageSpec("b", Deterministic(1000.0)),
    ]
    r = run([0.0, 0.5], stages)
    assert _col(r, "outcome") == ["ok", "shed"]
    assert np.isnan(r.records["b_enqueue_s"][1])
    assert r.records["b_batch_size"][1] == 0
    assert r.completed + r.dropped == r.requests["measured"] == 2


def test_hardware_is_priced_not_applied_twice(run):
    # The service model is already "on" the stage's hardware (hardware.scale(profiled)); the
    # engine carries the hardware for reporting and never scales again.
    fast = Hardware("c7i.large", vcpu=2, price_per_hour_usd=0.09, speed_factor=2.0)
    r = run([0.0], [StageSpec("s", fast.scale(Deterministic(1000.0)), hardware=fast)])
    assert _col(r, "e2e_ms") == [500.0]
    assert r.stages[0].hardware == "c7i.large"


def test_utilisation_of_a_deterministic_run(run):
    # Busy 0..1 and 2..3 out of the window 0..2 (the last arrival): 1.5 s busy of 2 s.
    r = run([0.0, 2.0], [StageSpec("s", Deterministic(1000.0))])
    assert r.stages[0].utilization == pytest.approx(0.5)


def test_stage_spec_validation():
    model = Exponential(1.0)
    for bad in (
        {"replicas": 0},
        {"workers_per_replica": 0},
        {"max_batch": 0},
        {"max_wait_ms": -1.0},
        {"network_ms": float("nan")},
        {"queue_capacity": -1},
        {"timeout_ms": 0.0},
    ):
        with pytest.raises(ConfigError):
            StageSpec("s", model, **bad)
    with pytest.raises(ConfigError, match="name"):
        StageSpec("bad name", model)
    with pytest.raises(ConfigError, match="unique"):
        simulate([0.0, 1.0], [StageSpec("s", model), StageSpec("s", model)])
    with pytest.raises(ConfigError, match="sorted"):
        simulate([1.0, 0.0], [StageSpec("s", model)])
    with pytest.raises(ConfigError, match="warmup"):
        simulate([0.0, 1.0], [StageSpec("s", model)], warmup_s=5.0)

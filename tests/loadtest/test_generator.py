"""Open-loop arrivals: on time, never early, independent of completions; bounded runs; a
trace the machine cannot drive is flagged ``generator_behind``, not measured as latency."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.loadtest.run import (
    BEHIND,
    UNFINISHED,
    GeneratorBehind,
    LoadTestLimits,
    Unfinished,
    run_loadtest,
)
from recsys.loadtest.server import LiveStage
from tests.loadtest.conftest import sleeper

RELAXED = LoadTestLimits(max_lag_ms=1000.0)


def _noop(payloads: list) -> list:
    return payloads


@pytest.mark.parametrize("generator", ["process", "thread"])
def test_a_light_trace_is_submitted_on_time_and_never_early(generator):
    arrivals = np.cumsum(np.random.default_rng(0).exponential(1 / 200.0, 300))
    result = run_loadtest(
        arrivals, [LiveStage("a", _noop)], list(range(300)), limits=RELAXED, generator=generator
    )
    assert result.generator_mode == generator
    assert (result.records["outcome"] == "ok").all()
    late = result.lateness_ms
    assert late.min() >= 0.0  # a request is never submitted before its time
    assert np.median(late) < 0.5
    assert result.generator()["lag_p50_ms"] == pytest.approx(np.median(late))
    # Latency counts from the scheduled arrival, so it includes any lateness.
    rec = result.records
    assert (rec["a_enqueue_s"] >= rec["arrival_s"]).all()


def test_arrivals_do_not_wait_for_completions():
    # 20 requests every 5 ms into a 25 ms stage: open loop keeps the schedule, the queue grows.
    arrivals = 0.01 + np.arange(20) * 0.005
    result = run_loadtest(
        arrivals, [LiveStage("a", sleeper(25.0))], list(range(20)), limits=RELAXED
    )
    assert np.median(result.lateness_ms) < 2.0
    assert result.records["a_queue_len"].max() >= 10
    assert result.records["e2e_ms"].iloc[-1] > 300.0


def test_an_impossible_trace_is_flagged_generator_behind():
    n = 100_000
    arrivals = np.sort(np.random.default_rng(1).uniform(0.0, 0.1, n))
    stages = [LiveStage("a", sleeper(0.2, 0.01), max_batch=64)]
    started = time.perf_counter()
    # No backlog bound: only the generator's schedule can stop it (with the default bound
    # the server's backlog may stop it first, as `unfinished`, before the generator's
    # lateness shows; which comes first depends on the machine).
    limits = LoadTestLimits(max_in_flight=n + 1)
    result = run_loadtest(arrivals, stages, list(range(n)), limits=limits)
    assert time.perf_counter() - started < 20.0  # stopped, not drained for minutes
    assert result.status == BEHIND
    assert "behind its schedule" in result.message
    assert "cannot drive this trace" in result.message
    with pytest.raises(GeneratorBehind, match="behind its schedule"):
        result.raise_for_status()


def test_a_server_that_cannot_keep_up_is_stopped_as_unfinished():
    arrivals = 0.01 + np.arange(2000) * 0.0005
    limits = LoadTestLimits(max_lag_ms=1000.0, max_in_flight=50)
    started = time.perf_counter()
    result = run_loadtest(
        arrivals, [LiveStage("a", sleeper(5.0))], list(range(2000)), limits=limits
    )
    assert time.perf_counter() - started < 10.0
    assert result.status == UNFINISHED
    assert result.records["outcome"].isna().any()  # in flight when stopped: no outcome
    with pytest.raises(Unfinished, match="cannot keep up"):
        result.raise_for_status()


def test_runs_are_bounded_in_count_and_time():
    stages = [LiveStage("a", _noop)]
    with pytest.raises(ConfigError, match="max_requests"):
        run_loadtest(np.zeros(11), stages, list(range(11)), limits=LoadTestLimits(max_requests=10))
    with pytest.raises(ConfigError, match="max_duration_s"):
        run_loadtest([0.0, 5.0], stages, [0, 1], limits=LoadTestLimits(max_duration_s=1.0))
    with pytest.raises(ConfigError, match="payloads"):
        run_loadtest([0.0, 0.1], stages, [0])
    with pytest.raises(ConfigError, match="sorted"):
        run_loadtest([0.1, 0.0], stages, [0, 1])
    with pytest.raises(ConfigError, match="max_lag_ms"):
        LoadTestLimits(max_lag_ms=0.0)


def test_the_generator_process_keeps_time_and_the_receive_path_is_measured():
    arrivals = 0.01 + np.arange(200) * 0.002
    # A generous lag bound: what is tested is that lateness and ingress are measured (a
    # busy host may delay two of 200 requests by over the default 1 ms at the p99).
    limits = LoadTestLimits(max_lag_ms=20.0)
    result = run_loadtest(arrivals, [LiveStage("a", _noop)], list(range(200)), limits=limits)
    assert result.ok
    # The generator's own lateness, and the ingress (scheduled arrival -> first queue), which
    # includes the pipe and the receiving thread and so is never below it.
    assert np.median(result.lateness_ms) < 0.5
    ingress = result.ingress_ms()
    assert (ingress >= result.lateness_ms - 1e-6).all()
    gen = result.generator()
    assert gen["ingress_p50_ms"] == pytest.approx(np.median(ingress))
    assert result.to_dict()["generator_mode"] == "process"


def test_an_unknown_generator_is_refused():
    with pytest.raises(ConfigError, match=r"loadtest\.generator"):
        run_loadtest([0.0, 0.1], [LiveStage("a", _noop)], [0, 1], generator="fork")


def test_objects_made_before_the_run_are_frozen_out_of_garbage_collection():
    import gc

    from recsys.loadtest.run import frozen_gc

    before = gc.get_freeze_count()
    with frozen_gc():
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == before
    with frozen_gc(False):
        assert gc.get_freeze_count() == before

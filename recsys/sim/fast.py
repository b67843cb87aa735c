"""A vectorised fast path for the simplest pipelines: FIFO multi-server stages in tandem.

When no stage batches, bounds its queue, times requests out or autoscales, each stage is a
FIFO ``c``-server queue and the Kiefer-Wolfowitz recursion gives every waiting time without an
event list: keep the sorted times until each server frees up; a customer waits for the
earliest, takes it, and the vector is re-sorted. Numba compiles it when installed (the
``fast`` extra); otherwise a plain Python loop runs (correct, slower).

Service times come from the same per-stage streams, in the same order, as the SimPy engine,
so :func:`simulate_fast` returns the same records as :func:`~recsys.sim.engine.simulate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recsys.errors import ConfigError
from recsys.sim.engine import StageSpec, _check_stages, check_arrivals, stage_streams
from recsys.sim.records import OK, RequestLog
from recsys.sim.results import RunInfo, SimResult, summarize
from recsys.sim.service import BatchSampler


def _kiefer_wolfowitz(arrivals: np.ndarray, services: np.ndarray, servers: int) -> np.ndarray:
    """Start times of FIFO service with ``servers`` servers (arrivals sorted)."""
    free = np.zeros(servers)  # when each server frees up, sorted ascending
    starts = np.empty(arrivals.size)
    for i in range(arrivals.size):
        start = max(arrivals[i], free[0])
        starts[i] = start
        done = start + services[i]
        j = 1  # insertion: drop free[0], put ``done`` in order
        while j < servers and free[j] < done:
            free[j - 1] = free[j]
            j += 1
        free[j - 1] = done
    return starts


def _compiled() -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    try:
        import numba
    except ImportError:  # pragma: no cover - the fast extra is not installed
        return _kiefer_wolfowitz
    return numba.njit(cache=True)(_kiefer_wolfowitz)  # type: ignore[no-any-return]


fifo_starts = _compiled()


def supports(stages: Sequence[StageSpec]) -> bool:
    """Whether every stage is a plain FIFO pool (no batching, bounds or timeouts)."""
    return all(
        s.max_batch == 1 and s.queue_capacity is None and s.timeout_ms is None for s in stages
    )


def _busy_until(starts: np.ndarray, ends: np.ndarray, t: float) -> float:
    return float(np.sum(np.clip(np.minimum(ends, t) - starts, 0.0, None)))


def simulate_fast(
    arrivals: np.ndarray | Sequence[float],
    stages: Sequence[StageSpec],
    seed: int = 0,
    warmup_s: float = 0.0,
    record: bool = True,
    *,
    progress: bool = False,  # accepted for a common signature; runs too fast to need a bar
    timeseries_bin_s: float = 60.0,
    n_batches: int = 20,
    confidence: float = 0.95,
) -> SimResult:
    """Same contract as :func:`~recsys.sim.engine.simulate` for plain FIFO pipelines."""
    if not supports(stages):
        raise ConfigError("the fast path needs max_batch=1, no queue_capacity and no timeout_ms")
    times = check_arrivals(arrivals)
    _check_stages(stages)
    if not 0.0 <= warmup_s <= times[-1]:
        raise ConfigError(f"warmup_s={warmup_s} must be >= 0 and before the last arrival")
    log = RequestLog(times, len(stages))
    a = log.arrays()  # writable views onto the log
    window: dict[str, list[tuple[float, float]]] = {"start": [], "end": []}
    t_end = float(times[-1])
    ready = times.copy()  # when each request leaves the previous hop
    for s, (spec, rng) in enumerate(zip(stages, stage_streams(seed, len(stages)), strict=True)):
        enq = ready + spec.network_ms / 1000.0
        order = np.argsort(enq, kind="stable")
        sampler = BatchSampler(spec.service, rng)
        services = np.array([sampler(1) for _ in range(order.size)])
        starts = fifo_starts(enq[order], services, spec.workers)
        ends = starts + services
        idx = np.arange(order.size)
        found = idx - np.minimum(np.searchsorted(starts, enq[order], side="right"), idx)
        a[f"enqueue_s/{s}"][order] = enq[order]
        a[f"start_s/{s}"][order] = starts
        a[f"service_s/{s}"][order] = services
        a[f"batch_size/{s}"][order] = 1
        a[f"queue_len/{s}"][order] = found
        for key, t in (("start", warmup_s), ("end", t_end)):
            window[key].append((_busy_until(starts, ends, t), spec.workers * t))
        ready = np.empty_like(ends)
        ready[order] = ends
    a["outcome"][:] = OK
    a["done_s"][:] = ready
    info = RunInfo(
        seed=seed,
        warmup_s=warmup_s,
        end_s=t_end,
        sim_end_s=float(ready.max()),
        n_batches=n_batches,
        confidence=confidence,
        timeseries_bin_s=timeseries_bin_s,
        engine="kiefer-wolfowitz",
    )
    replica_logs = {i: [(0.0, spec.replicas, 0)] for i, spec in enumerate(stages)}
    return summarize(log, stages, info, window=window, replica_logs=replica_logs, record=record)


def describe() -> dict[str, Any]:
    """Which implementation runs (numba or pure Python)."""
    return {"fifo_starts": "numba" if fifo_starts is not _kiefer_wolfowitz else "python"}


__all__ = ["describe", "fifo_starts", "simulate_fast", "supports"]

"""Finding the slow spells of a load test: windows in which the whole server ran slowly.

In each window of ``window_s`` of real time, everything the server did is held against
what it usually takes: each batch's work (its hold time with the slowdown from co-located
batches taken out, :mod:`recsys.loadtest.contention`) against the mean of batches like it
(stage, batch size, warm or cold), and each request's ingress delay against the mean of
requests that arrived with as many batches in service (the receiving thread waits longer
for a core and the GIL while workers run: that is load, not a slow machine). The window's
**factor** is the ratio of the sums: how many times longer than usual the server took
there. A window with few items may carry sampling noise too; ``shrink_n`` > 0 shrinks its
factor towards 1 by ``n / (n + shrink_n)`` (the calibration's default is 0: on the
development machine a window's excess was the machine's, ``simulations/calibration.md``).

:func:`~recsys.loadtest.stalls.destall` maps a load test onto the server's clock those
factors define (:class:`~recsys.sim.warp.ClockWarp`), so the calibrated model is fitted on
what the stages cost at the machine's usual speed, and the simulator puts the spells back,
where they slow the receiver and every stage at once (:mod:`recsys.sim.warp`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.errors import ConfigError
from recsys.loadtest.contention import estimate as estimate_contention
from recsys.loadtest.run import LoadTestResult
from recsys.sim.warp import ClockWarp

GROUP = ["stage", "batch_size", "warm"]


def in_service(batches: pd.DataFrame, t: np.ndarray) -> np.ndarray:
    """How many batches held a worker at each time ``t``."""
    edges = np.concatenate([batches["ready_s"].to_numpy(), batches["release_s"].to_numpy()])
    steps = np.concatenate([np.ones(len(batches)), -np.ones(len(batches))])
    order = np.argsort(edges, kind="stable")
    edges, level = edges[order], np.cumsum(steps[order])
    i = np.searchsorted(edges, t, side="right") - 1
    return np.where(i >= 0, level[np.clip(i, 0, None)], 0.0).astype(np.int64)


def estimate_warp(
    result: LoadTestResult,
    select: np.ndarray,
    window_s: float,
    shrink_n: float = 0.0,
) -> tuple[ClockWarp, np.ndarray]:
    """The clock of the server's slow spells in ``result``, from the batches and ingress
    delays of the requests of ``select`` (a boolean per request), and the factors of the
    windows that had any of them (in time order; windows without are left at 1 in the
    clock and say nothing about the machine)."""
    if not window_s > 0:
        raise ConfigError(f"warp window must be > 0, got {window_s}")
    if shrink_n < 0:
        raise ConfigError(f"warp shrink_n must be >= 0, got {shrink_n}")
    _, batches = estimate_contention(result, result.stages, select)
    measured = batches[batches["measured"]]
    if measured.empty:
        raise ConfigError("warp: no measured batches to estimate from")
    usual = measured.groupby(GROUP)["work_ms"].transform("mean").to_numpy(np.float64)
    times = [measured["ready_s"].to_numpy(np.float64)]
    took = [measured["work_ms"].to_numpy(np.float64)]
    expected = [usual]
    arrival = result.records["arrival_s"].to_numpy(np.float64)
    ingress = result.ingress_ms()
    ok = select & np.isfinite(ingress)
    if ok.any():
        delay = ingress[ok].clip(min=0.0)
        busy = in_service(batches, arrival[ok])
        times.append(arrival[ok])
        took.append(delay)
        expected.append(pd.Series(delay).groupby(busy).transform("mean").to_numpy(np.float64))
    t, actual, usual_all = (np.concatenate(x) for x in (times, took, expected))
    origin = float(np.floor(t.min() / window_s) * window_s)
    window = np.floor((t - origin) / window_s).astype(np.int64)
    n = np.bincount(window).astype(np.float64)
    total = np.bincount(window, weights=actual)
    usual_total = np.bincount(window, weights=usual_all)
    seen = (n > 0) & (usual_total > 0)
    raw = np.ones_like(n)
    raw[seen] = total[seen] / usual_total[seen]
    factors = 1.0 + (raw - 1.0) * n / (n + shrink_n)
    # A window can also run faster than usual, but not without bound: a window of a few
    # quick items says little (the floor keeps the clock from racing ahead on noise).
    factors = np.where(seen, np.clip(factors, 0.25, None), 1.0)
    return ClockWarp(origin, window_s, factors), factors[seen]


__all__ = ["estimate_warp", "in_service"]

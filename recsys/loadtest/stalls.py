"""Finding the stalls of a load test: stretches in which the whole server process stood still.

The server process leaves a trail of timestamps: the receiving thread enqueues each request,
each worker starts its batch, hands its results on and is released. A **stall** is a gap in
that trail while the receiver had work: requests were due (their scheduled arrival had
passed) but nothing at all happened in the process until the gap ended. Gaps shorter than
``min_ms`` are the ordinary waits for the GIL and a core, which the calibrated service and
ingress distributions already hold; longer ones are what the simulator models as
whole-process stalls (:mod:`recsys.sim.stalls`).

:func:`destall` maps a load test onto the server's clock (stall time cut out), so the
calibrated model is fitted on what the stages cost when the process runs, and the stalls
are put back by the simulator, where they strike every stage at once.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recsys.loadtest.run import LoadTestResult
from recsys.sim.stalls import ServerClock, StallPath, map_records

# A gap in the server's trail counts as a stall from this long (ms): the p99 of the wait of
# a thread woken while another runs is 0.5-2 ms on this machine (simulations/calibration.md).
MIN_STALL_MS = 3.0


def server_events(result: LoadTestResult) -> np.ndarray:
    """Sorted times (s) at which some thread of the server did something: the receiver
    enqueued a request, a worker started a batch, handed results to the next queue or was
    released."""
    cols = [f"{s}_{k}" for s in result.stages for k in ("enqueue_s", "start_s")]
    parts = [result.records[c].to_numpy(np.float64) for c in cols]
    parts += [np.asarray(result.release_s[s], dtype=np.float64) for s in result.release_s]
    events = np.concatenate(parts)
    return np.unique(events[np.isfinite(events)])


def detect_stalls(result: LoadTestResult, min_ms: float = MIN_STALL_MS) -> StallPath:
    """The stalls of one load test: for each request received late, the part of its wait in
    which no thread of the server did anything, where that is at least ``min_ms``."""
    events = server_events(result)
    arrival = result.records["arrival_s"].to_numpy(np.float64)
    received = result.records[f"{result.stages[0]}_enqueue_s"].to_numpy(np.float64)
    late = np.isfinite(received) & (received - arrival >= min_ms / 1000.0)
    if not late.any() or events.size == 0:
        return StallPath(np.empty(0), np.empty(0))
    t, e = arrival[late], received[late]
    before = np.searchsorted(events, e, side="left") - 1  # last event strictly before e
    last = np.where(before >= 0, events[np.clip(before, 0, None)], -np.inf)
    start = np.maximum(t, last)
    long = e - start >= min_ms / 1000.0
    return StallPath(start[long], (e - start)[long])


def destall(result: LoadTestResult, path: ServerClock) -> LoadTestResult:
    """The load test on the server's clock: every timestamp mapped by ``path.to_server``
    (:class:`~recsys.sim.stalls.StallPath`: the stalls' time is cut out of every wait,
    service, hold and ingress delay; :class:`~recsys.sim.warp.ClockWarp`: slow spells run at
    the usual speed)."""
    if not len(path):
        return result
    to = path.to_server
    return dataclasses.replace(
        result,
        records=map_records(result.records, result.stages, to),
        warmup_s=float(to(np.asarray([result.warmup_s]))[0]),
        ready_s={s: to(v) for s, v in result.ready_s.items()},
        release_s={s: to(v) for s, v in result.release_s.items()},
    )


__all__ = ["MIN_STALL_MS", "destall", "detect_stalls", "server_events"]

"""How much the stages of a live server slow each other down, from a load test's batches.

In the load test every stage runs in one process on this machine, so a batch takes longer
while other batches are in service (cores, caches, the GIL). For each batch, ``overlap`` is the
mean number of *other* batches in service while it held its worker. The simulator's model
(:mod:`recsys.sim.contention`) says a batch with ``w`` seconds of work and overlap ``k`` takes
about ``w (1 + c k)``; ``c`` is fitted per stage (and per warm/cold state, then pooled) by
least squares of hold time on overlap, and each batch's work is its hold time divided by
``1 + c k``: the service time it would have had alone, which the simulator then slows again
by what is in service with it at the time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recsys.loadtest.run import LoadTestResult

BATCH_COLUMNS = ("stage", "batch_size", "ready_s", "release_s", "hold_ms", "warm", "measured")


def batch_frame(result: LoadTestResult, stages: Sequence[str]) -> pd.DataFrame:
    """One row per batch the live server served: when it could start (``ready_s``), when its
    worker was free again (``release_s``), its hold time, whether it started warm, and
    whether its requests arrived after the warm-up (``measured``)."""
    parts = []
    rec = result.records
    arrival = rec["arrival_s"].to_numpy()
    for stage in stages:
        frame = pd.DataFrame(
            {
                "start": rec[f"{stage}_start_s"].to_numpy(),
                "batch_size": rec[f"{stage}_batch_size"].to_numpy(),
                "ready_s": result.ready_s[stage],
                "release_s": result.release_s[stage],
                "warm": result.warm[stage],
                "measured": arrival >= result.warmup_s,
            }
        )
        frame = frame[np.isfinite(frame["ready_s"]) & np.isfinite(frame["release_s"])]
        # A batch is every request that started together: keep it once (measured if any
        # of its requests is).
        frame = frame.groupby("start", sort=True).agg(
            batch_size=("batch_size", "first"),
            ready_s=("ready_s", "first"),
            release_s=("release_s", "first"),
            warm=("warm", "first"),
            measured=("measured", "any"),
        )
        frame["stage"] = stage
        parts.append(frame.reset_index(drop=True))
    out = pd.concat(parts, ignore_index=True)
    out["hold_ms"] = (out["release_s"] - out["ready_s"]) * 1000.0
    out["batch_size"] = out["batch_size"].astype(np.int64)
    return out[list(BATCH_COLUMNS)]


def overlap(batches: pd.DataFrame) -> np.ndarray:
    """Per batch, the mean number of other batches (any stage) holding a worker meanwhile."""
    start = batches["ready_s"].to_numpy()
    end = batches["release_s"].to_numpy()
    duration = end - start
    # N(t), the number of batches holding a worker, is a step function; its integral I(t)
    # is piecewise linear through the sorted boundaries.
    times = np.concatenate([start, end])
    steps = np.concatenate([np.ones_like(start), -np.ones_like(end)])
    order = np.argsort(times, kind="stable")
    times, steps = times[order], steps[order]
    level = np.cumsum(steps)  # N just after each boundary
    integral = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))])
    area = np.interp(end, times, integral) - np.interp(start, times, integral)
    with np.errstate(invalid="ignore", divide="ignore"):
        others = np.where(duration > 0, (area - duration) / duration, 0.0)
    return np.clip(others, 0.0, None)


def fit_contention(hold_ms: np.ndarray, others: np.ndarray, warm: np.ndarray) -> float:
    """``c`` of ``hold = work (1 + c k)``: per state, least squares of hold on overlap gives
    ``a + b k`` and ``c = b / a``; the states' values pooled by their batch counts. 0 where
    the overlap does not vary enough to tell (or the fit is negative)."""
    fits, weights = [], []
    for state in (True, False):
        sel = warm == state
        k, h = others[sel], hold_ms[sel]
        if k.size < 20 or np.ptp(k) < 0.2:
            continue
        b, a = np.polyfit(k, h, 1)
        if a > 0:
            fits.append(max(b / a, 0.0))
            weights.append(k.size)
    return float(np.average(fits, weights=weights)) if fits else 0.0


def alone_work(batches: pd.DataFrame, contention: dict[str, float]) -> pd.DataFrame:
    """``batches`` with ``overlap`` and ``work_ms`` (the hold time it would have had alone)."""
    out = batches.copy()
    out["overlap"] = overlap(batches)
    c = out["stage"].map(contention).fillna(0.0).to_numpy()
    out["work_ms"] = out["hold_ms"].to_numpy() / (1.0 + c * out["overlap"].to_numpy())
    return out


def estimate(
    result: LoadTestResult, stages: Sequence[str]
) -> tuple[dict[str, float], pd.DataFrame]:
    """Per stage ``c``, and every batch with its overlap and alone work (all batches count
    for the overlap; the fit uses the measured ones)."""
    batches = batch_frame(result, stages)
    others = overlap(batches)
    contention = {}
    for stage in stages:
        sel = (batches["stage"] == stage).to_numpy() & batches["measured"].to_numpy()
        contention[stage] = fit_contention(
            batches["hold_ms"].to_numpy()[sel], others[sel], batches["warm"].to_numpy()[sel]
        )
    return contention, alone_work(batches, contention)


__all__ = ["alone_work", "batch_frame", "estimate", "fit_contention", "overlap"]

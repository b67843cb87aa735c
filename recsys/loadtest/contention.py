"""How much the stages of a live server slow each other down, from a load test's batches.

In the load test every stage runs in one process on this machine, so a batch takes longer
while other batches are in service (cores, caches, the GIL). For each batch, ``overlap`` is the
mean number of *other* batches in service while it held its worker. The simulator's model
(:mod:`recsys.sim.contention`) runs a batch at rate ``1 / (1 + c k)`` while ``k`` others are
in service; ``c`` is fitted per stage (and per warm/cold state, then pooled) as the value
that leaves the implied work uncorrelated with the overlap, and each batch's work is what it did
at those rates over its hold: the service time it would have had alone, which the simulator
then slows again by what is in service with it there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recsys.loadtest.run import LoadTestResult

BATCH_COLUMNS = ("stage", "batch_size", "ready_s", "release_s", "hold_ms", "warm", "measured")


def batch_frame(
    result: LoadTestResult, stages: Sequence[str], select: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per batch the live server served: when it could start (``ready_s``), when its
    worker was free again (``release_s``), its hold time, whether it started warm, and
    whether its requests count (``measured``: arrived after the warm-up, or ``select``, a
    boolean per request)."""
    parts = []
    rec = result.records
    counted = rec["arrival_s"].to_numpy() >= result.warmup_s if select is None else select
    for stage in stages:
        frame = pd.DataFrame(
            {
                "start": rec[f"{stage}_start_s"].to_numpy(),
                "batch_size": rec[f"{stage}_batch_size"].to_numpy(),
                "ready_s": result.ready_s[stage],
                "release_s": result.release_s[stage],
                "warm": result.warm[stage],
                "measured": counted,
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


def others_time(batches: pd.DataFrame) -> np.ndarray:
    """Per batch and ``k``, how long it held its worker while ``k`` other batches (any
    stage) held theirs: an array ``[n_batches, k_max + 1]`` of seconds."""
    start = batches["ready_s"].to_numpy()
    end = batches["release_s"].to_numpy()
    # N(t), the number of batches holding a worker, is a step function through the sorted
    # boundaries; for each level j the running time spent at N = j is piecewise linear.
    times = np.concatenate([start, end])
    steps = np.concatenate([np.ones_like(start), -np.ones_like(end)])
    order = np.argsort(times, kind="stable")
    times, steps = times[order], steps[order]
    level = np.cumsum(steps)[:-1].astype(np.int64)  # N on each segment between boundaries
    dt = np.diff(times)
    k_max = max(int(level.max(initial=1)) - 1, 0)
    out = np.zeros((start.size, k_max + 1))
    for k in range(k_max + 1):
        # Within a batch's interval N >= 1 (itself); N = k + 1 means k others.
        at_k = np.concatenate([[0.0], np.cumsum(np.where(level == k + 1, dt, 0.0))])
        out[:, k] = np.interp(end, times, at_k) - np.interp(start, times, at_k)
    return np.clip(out, 0.0, None)


def overlap(batches: pd.DataFrame) -> np.ndarray:
    """Per batch, the mean number of other batches (any stage) holding a worker meanwhile."""
    spent = others_time(batches)
    duration = spent.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(duration > 0, spent @ np.arange(spent.shape[1]) / duration, 0.0)
    return mean


def fit_contention(hold_ms: np.ndarray, overlap: np.ndarray, warm: np.ndarray) -> float:
    """``c`` of the rate model from batches' hold times and overlaps.

    A batch of work ``w`` that spends a fraction ``f`` of its hold ``d`` beside one other
    batch does ``w = d (1 - beta f)`` of work, ``beta = c / (1 + c)``. Work should not depend
    on how much company a batch had, so ``beta`` is the value that makes ``d (1 - beta f)``
    uncorrelated with ``f``: ``beta = cov(d, f) / cov(d f, f)``, per state (warm, cold), then
    ``c = beta / (1 - beta)`` pooled by batch counts. 0 where ``f`` does not vary enough to
    tell or ``beta`` falls outside [0, 1). The assumption holds for work as steady as the
    live stages' (coefficient of variation 0.2-0.5: ``c`` within 10% in simulated tandems,
    ``tests/loadtest/test_contention.py``); for exponential work it does not (longer batches
    collect more company) and ``c`` comes out up to 50% off."""
    fits, weights = [], []
    for state in (True, False):
        sel = warm == state
        f, d = overlap[sel], hold_ms[sel]
        if f.size < 20 or np.ptp(f) < 0.2:
            continue
        denom = float(np.cov(d * f, f)[0, 1])
        if denom <= 0:
            continue
        beta = float(np.cov(d, f)[0, 1]) / denom
        if 0.0 <= beta < 1.0:
            fits.append(beta / (1.0 - beta))
            weights.append(f.size)
    return float(np.average(fits, weights=weights)) if fits else 0.0


def alone_work(batches: pd.DataFrame, contention: dict[str, float]) -> pd.DataFrame:
    """``batches`` with ``overlap`` and ``work_ms``: the work it did, at rate ``1 / (1 + c k)``
    while ``k`` others held a worker (the time it would have held its worker alone)."""
    out = batches.copy()
    spent = others_time(batches)
    c = out["stage"].map(contention).fillna(0.0).to_numpy()
    k = np.arange(spent.shape[1])
    out["overlap"] = overlap(batches)
    out["work_ms"] = 1000.0 * (spent / (1.0 + c[:, None] * k[None, :])).sum(axis=1)
    return out


def estimate(
    result: LoadTestResult, stages: Sequence[str], select: np.ndarray | None = None
) -> tuple[dict[str, float], pd.DataFrame]:
    """Per stage ``c``, and every batch with its overlap and alone work (all batches count
    for the overlap; the fit uses the measured ones, see :func:`batch_frame`)."""
    batches = batch_frame(result, stages, select)
    others = overlap(batches)
    contention = {}
    for stage in stages:
        sel = (batches["stage"] == stage).to_numpy() & batches["measured"].to_numpy()
        contention[stage] = fit_contention(
            batches["hold_ms"].to_numpy()[sel], others[sel], batches["warm"].to_numpy()[sel]
        )
    return contention, alone_work(batches, contention)


__all__ = ["alone_work", "batch_frame", "estimate", "fit_contention", "others_time", "overlap"]

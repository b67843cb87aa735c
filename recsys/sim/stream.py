"""Streaming statistics: what ``record=False`` keeps of a run, in memory that does not grow.

Instead of one row per request, a run fills fixed-size accumulators as requests finish:
log-bucketed histograms (see :mod:`recsys.metrics_latency`; percentiles within 0.2%) of the
end-to-end latency per batch of consecutive requests (for batch-means intervals), of each
stage's wait and wait+service, per-stage sums and counts, a least-squares fit of queue length
against time, and per-time-bin counts, coarser histograms and queue peaks for the time series.

The compiled engine fills them event by event (:mod:`recsys.sim.kernel`);
:meth:`StreamStats.from_log` fills the same accumulators from a finished per-request log,
so every engine reports the same ``record=False`` summary for the same run.
:func:`summarize_stream` turns them into a :class:`~recsys.sim.results.SimResult` without
records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys.metrics_latency import (
    DEFAULT_QUANTILES,
    Histogram,
    hist_index,
    hist_size,
    histogram_summary_ms,
    percentile_key,
)
from recsys.sim.records import OK, OUTCOMES, SHED, TIMEOUT, RequestLog
from recsys.sim.results import ReplicaLog, RunInfo, SimResult, StageStats, step_average

if TYPE_CHECKING:
    from recsys.sim.engine import StageSpec

SUB = 256  # sub-buckets per power of two of the main histograms (0.2% relative error)
TS_SUB = 32  # time-series bins (1.6%; they feed plots)

# Columns of the per-stage float accumulator ``acc`` (measured requests only).
(
    REACHED,  # arrived at the stage (queued or shed)
    SERVED,
    WAIT_SUM,  # seconds
    SERVICE_SUM,
    INV_BATCH_SUM,  # sum of 1 / batch size over served requests (harmonic mean batch)
    TIMEOUTS,
    SHEDS,
    QMAX,  # longest queue found on arrival
    RN,  # least squares of queue length on arrival time: n, sums of x, y, xy, xx
    RX,
    RY,
    RXY,
    RXX,
    RX_MIN,
    RX_MAX,
    LAT_LO,  # exact extremes of wait+service and of wait (seconds)
    LAT_HI,
    WAIT_LO,
    WAIT_HI,
) = range(19)
N_ACC = 19

# Rows of ``ts_counts``: arrivals, then one row per outcome (ok, timeout, shed).
TS_ARRIVALS = 0


@dataclass
class StreamStats:
    """The accumulators of one run (arrays the engines write into)."""

    e2e: np.ndarray  # [n_batches, hist_size(SUB)] counts of measured ok end-to-end (s)
    e2e_ext: np.ndarray  # [n_batches, 3]: sum, min, max
    lat: np.ndarray  # [n_stages, hist_size(SUB)] wait + service of measured served (s)
    wait: np.ndarray  # [n_stages, hist_size(SUB)]
    acc: np.ndarray  # [n_stages, N_ACC]
    ts_counts: np.ndarray  # [4, n_bins]: arrivals, ok, timeout, shed (all requests)
    ts_hist: np.ndarray  # [n_bins, hist_size(TS_SUB)] int32 counts of ok end-to-end (s)
    ts_ext: np.ndarray  # [n_bins, 2]: min, max
    ts_qmax: np.ndarray  # [n_stages, n_bins] longest queue found on arrival (-1: none)

    @classmethod
    def empty(cls, n_stages: int, n_batches: int, n_bins: int) -> StreamStats:
        acc = np.zeros((n_stages, N_ACC))
        acc[:, [RX_MIN, LAT_LO, WAIT_LO]] = math.inf
        acc[:, [RX_MAX, LAT_HI, WAIT_HI]] = -math.inf
        e2e_ext = np.zeros((n_batches, 3))
        e2e_ext[:, 1], e2e_ext[:, 2] = math.inf, -math.inf
        ts_ext = np.empty((n_bins, 2))
        ts_ext[:, 0], ts_ext[:, 1] = math.inf, -math.inf
        return cls(
            e2e=np.zeros((n_batches, hist_size(SUB)), np.int64),
            e2e_ext=e2e_ext,
            lat=np.zeros((n_stages, hist_size(SUB)), np.int64),
            wait=np.zeros((n_stages, hist_size(SUB)), np.int64),
            acc=acc,
            ts_counts=np.zeros((4, n_bins), np.int64),
            ts_hist=np.zeros((n_bins, hist_size(TS_SUB)), np.int32),
            ts_ext=ts_ext,
            ts_qmax=np.full((n_stages, n_bins), -1, np.int64),
        )

    @classmethod
    def from_log(cls, log: RequestLog, n_stages: int, info: RunInfo) -> StreamStats:
        """The accumulators a streaming run would have filled, from a finished log."""
        a = log.arrays()
        arrival, outcome = a["arrival_s"], a["outcome"]
        n = arrival.size
        n_bins = n_time_bins(info)
        out = cls.empty(n_stages, info.n_batches, n_bins)
        m0 = first_measured(arrival, info.warmup_s)
        measured = np.arange(n) >= m0
        bins = time_bins(arrival, info)
        # End to end, per batch of consecutive measured requests.
        ok = outcome == OK
        e2e = a["done_s"] - arrival
        sel = measured & ok
        batch = batch_of(np.flatnonzero(sel) - m0, n - m0, info.n_batches)
        _add_hist(out.e2e, batch, e2e[sel], SUB)
        for k in range(info.n_batches):
            values = e2e[sel][batch == k]
            if values.size:
                out.e2e_ext[k] = (values.sum(), values.min(), values.max())
        # Time series (all requests, warm-up included).
        out.ts_counts[TS_ARRIVALS] = np.bincount(bins, minlength=n_bins)
        for code in range(len(OUTCOMES)):
            out.ts_counts[1 + code] = np.bincount(bins[outcome == code], minlength=n_bins)
        _add_hist(out.ts_hist, bins[ok], e2e[ok], TS_SUB)
        if ok.any():
            frame = pd.DataFrame({"b": bins[ok], "v": e2e[ok]}).groupby("b")["v"]
            low, high = frame.min(), frame.max()
            out.ts_ext[low.index.to_numpy(), 0] = low.to_numpy()
            out.ts_ext[high.index.to_numpy(), 1] = high.to_numpy()
        for s in range(n_stages):
            _stage_from_log(out, s, a, measured, bins, info)
        return out


def _stage_from_log(
    out: StreamStats,
    s: int,
    a: Mapping[str, np.ndarray],
    measured: np.ndarray,
    bins: np.ndarray,
    info: RunInfo,
) -> None:
    enq, start, service = a[f"enqueue_s/{s}"], a[f"start_s/{s}"], a[f"service_s/{s}"]
    shed_here = (a["drop_stage"] == s) & (a["outcome"] == SHED)
    reached_all = ~np.isnan(enq) | shed_here
    qlen = a[f"queue_len/{s}"]
    peak = pd.Series(qlen[reached_all]).groupby(bins[reached_all]).max()
    out.ts_qmax[s, peak.index.to_numpy()] = peak.to_numpy()
    acc = out.acc[s]
    reached = measured & reached_all
    x = a["arrival_s"][reached] - info.warmup_s
    y = qlen[reached].astype(np.float64)
    acc[REACHED] = acc[RN] = reached.sum()
    if x.size:
        acc[QMAX] = y.max()
        acc[RX], acc[RY], acc[RXY], acc[RXX] = x.sum(), y.sum(), (x * y).sum(), (x * x).sum()
        acc[RX_MIN], acc[RX_MAX] = x.min(), x.max()
    served = measured & ~np.isnan(start)
    wait = (start - enq)[served]
    lat = wait + service[served]
    acc[SERVED] = served.sum()
    acc[WAIT_SUM], acc[SERVICE_SUM] = wait.sum(), service[served].sum()
    acc[INV_BATCH_SUM] = (1.0 / a[f"batch_size/{s}"][served]).sum()
    if wait.size:
        acc[LAT_LO], acc[LAT_HI] = lat.min(), lat.max()
        acc[WAIT_LO], acc[WAIT_HI] = wait.min(), wait.max()
    out.lat[s] += np.bincount(hist_index(lat, SUB), minlength=out.lat.shape[1])
    out.wait[s] += np.bincount(hist_index(wait, SUB), minlength=out.wait.shape[1])
    dropped = measured & (a["drop_stage"] == s)
    acc[TIMEOUTS] = (dropped & (a["outcome"] == TIMEOUT)).sum()
    acc[SHEDS] = (dropped & shed_here).sum()


def _add_hist(target: np.ndarray, rows: np.ndarray, values: np.ndarray, sub: int) -> None:
    width = target.shape[1]
    flat = rows.astype(np.int64) * width + hist_index(values, sub)
    target += np.bincount(flat, minlength=target.size).reshape(target.shape).astype(target.dtype)


def first_measured(arrival: np.ndarray, warmup_s: float) -> int:
    """Index of the first request in the statistics (arrivals are sorted)."""
    return int(np.searchsorted(arrival, warmup_s, side="left"))


def n_time_bins(info: RunInfo) -> int:
    return int(info.end_s // info.timeseries_bin_s) + 1


def time_bins(arrival: np.ndarray, info: RunInfo) -> np.ndarray:
    """Time-series bin of each arrival (by multiplication, as the compiled engine does)."""
    n_bins = n_time_bins(info)
    return np.minimum((arrival * (1.0 / info.timeseries_bin_s)).astype(np.int64), n_bins - 1)


def batch_of(i: np.ndarray, n: int, n_batches: int) -> np.ndarray:
    """Batch of the ``i``-th of ``n`` ordered items, as ``numpy.array_split`` cuts them."""
    q, r = divmod(n, n_batches)
    head = r * (q + 1)
    return np.where(i < head, i // (q + 1), r + (i - head) // max(q, 1))


def _hist(counts: np.ndarray, low: float, high: float, total: float = 0.0) -> Histogram:
    return Histogram(counts, total, low, high)


def _percentiles_ms(hist: Histogram) -> dict[str, float]:
    values = hist.quantiles(DEFAULT_QUANTILES) * 1000.0
    return {percentile_key(q): float(v) for q, v in zip(DEFAULT_QUANTILES, values, strict=True)}


def _stage_stats(
    stats: StreamStats,
    s: int,
    spec: StageSpec,
    info: RunInfo,
    window: Mapping[str, Sequence[tuple[float, float]]],
    replica_log: ReplicaLog,
) -> StageStats:
    acc = stats.acc[s]
    span = info.end_s - info.warmup_s
    (busy0, area0), (busy1, area1) = window["start"][s], window["end"][s]
    utilization = (busy1 - busy0) / (area1 - area0) if area1 > area0 else math.nan
    reached, served = int(acc[REACHED]), int(acc[SERVED])
    if span > 0:
        mean_workers = (area1 - area0) / span
        offered = reached / span * spec.service.mean_s(spec.max_batch)
        offered /= spec.max_batch * mean_workers
    else:
        offered = math.nan
    growth = 0.0
    if acc[RN] > 2 and acc[RX_MAX] > acc[RX_MIN]:
        n = acc[RN]
        sxx = acc[RXX] - acc[RX] ** 2 / n
        growth = float((acc[RXY] - acc[RX] * acc[RY] / n) / sxx) if sxx > 0 else 0.0
    replicas = (
        step_average(replica_log, np.array([info.warmup_s, info.end_s]))[0]
        if span > 0
        else float(replica_log[-1][1] + replica_log[-1][2])
    )
    return StageStats(
        name=spec.name,
        replicas=spec.replicas,
        workers_per_replica=spec.workers_per_replica,
        hardware=spec.hardware.name if spec.hardware is not None else None,
        utilization=float(utilization),
        offered_load=float(offered),
        arrivals=reached,
        served=served,
        timeouts=int(acc[TIMEOUTS]),
        shed=int(acc[SHEDS]),
        latency_ms=_percentiles_ms(_hist(stats.lat[s], acc[LAT_LO], acc[LAT_HI])),
        wait_ms=_percentiles_ms(_hist(stats.wait[s], acc[WAIT_LO], acc[WAIT_HI])),
        mean_wait_ms=float(acc[WAIT_SUM] / served * 1000) if served else math.nan,
        mean_service_ms=float(acc[SERVICE_SUM] / served * 1000) if served else math.nan,
        mean_batch=float(served / acc[INV_BATCH_SUM]) if served else math.nan,
        max_queue=int(acc[QMAX]) if reached else 0,
        queue_growth_per_s=growth,
        mean_replicas=float(replicas),
        max_replicas=int(max(r + p for _, r, p in replica_log)),
        replica_hours=float(replicas * span / 3600.0),
    )


def _timeseries(
    stats: StreamStats,
    stages: Sequence[StageSpec],
    info: RunInfo,
    replica_logs: Mapping[int, ReplicaLog],
) -> pd.DataFrame:
    """The columns of :func:`recsys.sim.results.summarize`'s time series, from the bins."""
    width = info.timeseries_bin_s
    n_bins = stats.ts_counts.shape[1]
    edges = np.arange(n_bins + 1) * width
    frame = pd.DataFrame({"t_s": edges[:-1], "complete": edges[1:] <= info.end_s})
    frame["arrivals"] = stats.ts_counts[TS_ARRIVALS]
    frame["qps"] = frame["arrivals"] / width
    for code, name in enumerate(OUTCOMES):
        frame[name] = stats.ts_counts[1 + code]
    quantiles = np.full((n_bins, 2), math.nan)
    for b in np.flatnonzero(stats.ts_counts[1 + OK]):
        hist = _hist(stats.ts_hist[b].astype(np.int64), *stats.ts_ext[b])
        quantiles[b] = hist.quantiles((50.0, 99.0)) * 1000.0
    frame["p50_ms"], frame["p99_ms"] = quantiles[:, 0], quantiles[:, 1]
    frame["warmup"] = edges[1:] <= info.warmup_s
    for s, spec in enumerate(stages):
        frame[f"{spec.name}_replicas"] = step_average(replica_logs[s], edges, billed=False)
        frame[f"{spec.name}_queue_max"] = np.maximum(stats.ts_qmax[s], 0)
    return frame


def summarize_stream(
    stats: StreamStats,
    stages: Sequence[StageSpec],
    info: RunInfo,
    *,
    n_requests: int,
    n_measured: int,
    window: Mapping[str, Sequence[tuple[float, float]]],
    replica_logs: Mapping[int, ReplicaLog],
) -> SimResult:
    """A :class:`SimResult` without records from a run's accumulators."""
    batches = [
        _hist(stats.e2e[k], stats.e2e_ext[k, 1], stats.e2e_ext[k, 2], stats.e2e_ext[k, 0])
        for k in range(stats.e2e.shape[0])
    ]
    latency = histogram_summary_ms(batches, confidence=info.confidence)
    per_stage = [
        _stage_stats(stats, s, spec, info, window, replica_logs[s]) for s, spec in enumerate(stages)
    ]
    drops = {
        "timeout": int(stats.acc[:, TIMEOUTS].sum()),
        "shed": int(stats.acc[:, SHEDS].sum()),
    }
    instability = [
        f"stage {st.name}: offered load {st.offered_load:.3f} >= 1 even in full batches of "
        f"{spec.max_batch}; its queue grows without bound (about {st.queue_growth_per_s:.1f} "
        "requests/s) unless requests are shed or time out"
        for st, spec in zip(per_stage, stages, strict=True)
        if st.offered_load >= 1.0
    ]
    merged = batches[0]
    for other in batches[1:]:
        merged = merged.merge(other)
    return SimResult(
        latency_ms=latency,
        stages=per_stage,
        completed=merged.n,
        dropped=sum(drops.values()),
        drops=drops,
        requests={"arrived": n_requests, "measured": n_measured, "warmup": n_requests - n_measured},
        unstable=bool(instability),
        instability=instability,
        timeseries=_timeseries(stats, stages, info, replica_logs),
        records=None,
        info=info,
        e2e_ms=np.empty(0),
        e2e_hist=merged,
    )

"""What a run produced: end-to-end and per-stage statistics, a time series, per-request records.

Statistics cover the requests that arrived at or after the warm-up; latency percentiles are
over requests that completed (dropped ones are counted separately and lower the SLA
attainment). Confidence intervals are batch means over consecutive requests in arrival order.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys.metrics_latency import Histogram, latency_summary_ms, percentiles_ms
from recsys.sim.records import OK, OUTCOMES, PENDING, SHED, RequestLog

if TYPE_CHECKING:
    from recsys.sim.engine import StageSpec

ReplicaLog = list[tuple[float, int, int]]


@dataclass(frozen=True)
class RunInfo:
    """How the run was set up and how long it lasted (simulated seconds)."""

    seed: int
    warmup_s: float
    end_s: float  # last arrival: the measurement window is [warmup_s, end_s]
    sim_end_s: float  # when the last request left
    n_batches: int
    confidence: float
    timeseries_bin_s: float
    engine: str


@dataclass(frozen=True, eq=False)
class StageStats:
    """One stage over the measurement window (latencies in ms; ``latency_ms`` is wait+service)."""

    name: str
    replicas: int
    workers_per_replica: int
    hardware: str | None
    utilization: float
    offered_load: float
    arrivals: int
    served: int
    timeouts: int
    shed: int
    latency_ms: dict[str, float]
    wait_ms: dict[str, float]
    mean_wait_ms: float
    mean_service_ms: float
    mean_batch: float
    max_queue: int
    queue_growth_per_s: float
    mean_replicas: float
    max_replicas: int
    replica_hours: float

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


@dataclass(frozen=True, eq=False)
class SimResult:
    """Result of :func:`recsys.sim.engine.simulate` (see module docstring)."""

    latency_ms: dict[str, float]
    stages: list[StageStats]
    completed: int
    dropped: int
    drops: dict[str, int]
    requests: dict[str, int]
    unstable: bool
    instability: list[str]
    timeseries: pd.DataFrame
    records: pd.DataFrame | None
    info: RunInfo
    e2e_ms: np.ndarray = field(repr=False)  # measured completed requests (empty when streamed)
    e2e_hist: Histogram | None = field(default=None, repr=False)  # record=False: seconds

    @property
    def offered_qps(self) -> float:
        """Arrival rate over the measurement window."""
        return self.requests["measured"] / max(self.info.end_s - self.info.warmup_s, 1e-12)

    def sla_attainment(self, threshold_ms: float) -> float:
        """Share of measured requests answered within ``threshold_ms`` (drops count as misses)."""
        measured = self.requests["measured"]
        if not measured:
            return math.nan
        if self.e2e_hist is not None:  # streamed: within the histogram's resolution
            hist = self.e2e_hist
            return (
                hist.fraction_at_most(threshold_ms / 1000.0) * hist.n / measured if hist.n else 0.0
            )
        return float(np.count_nonzero(self.e2e_ms <= threshold_ms) / measured)

    def meets_sla(self, p99_ms: float) -> bool:
        """p99 within the target, nothing dropped and a stable queue."""
        return bool(self.latency_ms["p99"] <= p99_ms and self.dropped == 0 and not self.unstable)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the ``result.json`` keys this module owns."""
        return _clean(
            {
                "latency_ms": self.latency_ms,
                "stages": [s.to_dict() for s in self.stages],
                "completed": self.completed,
                "dropped": self.dropped,
                "drops": self.drops,
                "requests": self.requests,
                "offered_qps": self.offered_qps,
                "unstable": self.unstable,
                "instability": self.instability,
                "sim": {**asdict(self.info), "ci_method": "batch_means"},
            }
        )

    def write_records(self, path: str | Path) -> Path:
        """Per-request records to Parquet (atomic: temporary file, then rename)."""
        if self.records is None:
            raise ValueError("this run was simulated with record=False")
        return _atomic_parquet(self.records, Path(path))

    def write_timeseries(self, path: str | Path) -> Path:
        return _atomic_parquet(self.timeseries, Path(path))


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _clean(value: Any) -> Any:
    """NaN/inf -> None and NumPy scalars -> Python, recursively, so json.dumps never fails."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def step_average(log: ReplicaLog, edges: np.ndarray, billed: bool = True) -> np.ndarray:
    """Time average of a replica step function over consecutive ``edges`` intervals."""
    t = np.array([row[0] for row in log], dtype=float)
    v = np.array([row[1] + (row[2] if billed else 0) for row in log], dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(v[:-1] * np.diff(t))])

    def integral(x: np.ndarray) -> np.ndarray:
        k = np.maximum(np.searchsorted(t, x, side="right") - 1, 0)
        return cum[k] + v[k] * (x - t[k])

    edges = np.asarray(edges, dtype=float)
    widths = np.diff(edges)
    total = np.diff(integral(edges))
    return np.divide(total, widths, out=np.full(widths.size, np.nan), where=widths > 0)


def _stage_stats(
    a: dict[str, np.ndarray],
    s: int,
    spec: StageSpec,
    *,
    measured: np.ndarray,
    info: RunInfo,
    window: Mapping[str, Sequence[tuple[float, float]]],
    replica_log: ReplicaLog,
) -> StageStats:
    enq, start = a[f"enqueue_s/{s}"], a[f"start_s/{s}"]
    shed_here = (a["drop_stage"] == s) & (a["outcome"] == SHED)
    reached = measured & (~np.isnan(enq) | shed_here)
    served = measured & ~np.isnan(start)
    wait_s = (start - enq)[served]
    service_s = a[f"service_s/{s}"][served]
    batch = a[f"batch_size/{s}"][served]
    span = info.end_s - info.warmup_s
    (busy0, area0), (busy1, area1) = window["start"][s], window["end"][s]
    utilization = (busy1 - busy0) / (area1 - area0) if area1 > area0 else math.nan
    if span > 0:
        mean_workers = (area1 - area0) / span
        rate = float(np.count_nonzero(reached)) / span
        offered: float = (
            rate * spec.service.mean_s(spec.max_batch) / (spec.max_batch * mean_workers)
        )
    else:  # every measured request arrived at one instant: no rate to speak of
        offered = math.nan
    qlen = a[f"queue_len/{s}"][reached]
    growth = 0.0
    if qlen.size > 2 and np.ptp(a["arrival_s"][reached]) > 0:
        growth = float(np.polyfit(a["arrival_s"][reached], qlen.astype(float), 1)[0])
    replicas = (
        step_average(replica_log, np.array([info.warmup_s, info.end_s]))[0]
        if span > 0
        else float(replica_log[-1][1] + replica_log[-1][2])
    )
    dropped_here = measured & (a["drop_stage"] == s)
    return StageStats(
        name=spec.name,
        replicas=spec.replicas,
        workers_per_replica=spec.workers_per_replica,
        hardware=spec.hardware.name if spec.hardware is not None else None,
        utilization=float(utilization),
        offered_load=float(offered),
        arrivals=int(np.count_nonzero(reached)),
        served=int(served.sum()),
        timeouts=int(np.count_nonzero(dropped_here & ~shed_here)),
        shed=int(np.count_nonzero(dropped_here & shed_here)),
        latency_ms=percentiles_ms(wait_s + service_s, unit="s"),
        wait_ms=percentiles_ms(wait_s, unit="s"),
        mean_wait_ms=float(wait_s.mean() * 1000) if wait_s.size else math.nan,
        mean_service_ms=float(service_s.mean() * 1000) if service_s.size else math.nan,
        mean_batch=float(batch.size / np.sum(1.0 / batch)) if batch.size else math.nan,
        max_queue=int(qlen.max()) if qlen.size else 0,
        queue_growth_per_s=growth,
        mean_replicas=float(replicas),
        max_replicas=int(max(r + p for _, r, p in replica_log)),
        replica_hours=float(replicas * span / 3600.0),
    )


def _timeseries(
    a: dict[str, np.ndarray],
    stages: Sequence[StageSpec],
    info: RunInfo,
    replica_logs: Mapping[int, ReplicaLog],
) -> pd.DataFrame:
    """Per-bin (default per-minute) arrivals, outcomes, p50/p99, replicas and queue length."""
    width = info.timeseries_bin_s
    n_bins = int(info.end_s // width) + 1
    arrival = a["arrival_s"]
    bins = np.minimum((arrival // width).astype(np.int64), n_bins - 1)
    edges = np.arange(n_bins + 1) * width
    outcome = a["outcome"]
    frame = pd.DataFrame({"t_s": edges[:-1], "complete": edges[1:] <= info.end_s})
    frame["arrivals"] = np.bincount(bins, minlength=n_bins)
    frame["qps"] = frame["arrivals"] / width
    for code, name in enumerate(OUTCOMES):
        frame[name] = np.bincount(bins, weights=outcome == code, minlength=n_bins).astype(np.int64)
    ok = outcome == OK
    e2e = pd.Series((a["done_s"] - arrival)[ok] * 1000.0)
    grouped = e2e.groupby(bins[ok])
    for q, key in ((0.5, "p50_ms"), (0.99, "p99_ms")):
        frame[key] = grouped.quantile(q).reindex(range(n_bins)).to_numpy()
    frame["warmup"] = edges[1:] <= info.warmup_s
    for s, spec in enumerate(stages):
        frame[f"{spec.name}_replicas"] = step_average(replica_logs[s], edges, billed=False)
        qlen = a[f"queue_len/{s}"].astype(np.float64)
        reached = ~np.isnan(a[f"enqueue_s/{s}"]) | (a["drop_stage"] == s)
        peak = pd.Series(qlen[reached]).groupby(bins[reached]).max()
        frame[f"{spec.name}_queue_max"] = peak.reindex(range(n_bins)).fillna(0).to_numpy(np.int64)
    return frame


def summarize(
    log: RequestLog,
    stages: Sequence[StageSpec],
    info: RunInfo,
    *,
    window: Mapping[str, Sequence[tuple[float, float]]],
    replica_logs: Mapping[int, ReplicaLog],
    record: bool,
) -> SimResult:
    """Turn a finished run's log into a :class:`SimResult`.

    With ``record=False`` the summary is the streaming one (:mod:`recsys.sim.stream`), the
    same that the compiled engine computes without keeping a log, so engines agree.
    """
    if (np.frombuffer(log.outcome, dtype=np.int8) == PENDING).any():
        raise RuntimeError("simulation ended with requests still in flight (engine bug)")
    if not record:
        from recsys.sim.stream import StreamStats, first_measured, summarize_stream

        streamed = StreamStats.from_log(log, len(stages), info)
        return summarize_stream(
            streamed,
            stages,
            info,
            n_requests=log.n,
            n_measured=log.n - first_measured(log.arrival_s, info.warmup_s),
            window=window,
            replica_logs=replica_logs,
        )
    a = log.arrays()
    outcome = a["outcome"]
    measured = a["arrival_s"] >= info.warmup_s
    ok = measured & (outcome == OK)
    e2e_ms = ((a["done_s"] - a["arrival_s"]) * 1000.0)[ok]
    latency = latency_summary_ms(e2e_ms, n_batches=info.n_batches, confidence=info.confidence)
    stats = [
        _stage_stats(
            a, s, spec, measured=measured, info=info, window=window, replica_log=replica_logs[s]
        )
        for s, spec in enumerate(stages)
    ]
    drops = {
        name: int(np.count_nonzero(measured & (outcome == code)))
        for code, name in enumerate(OUTCOMES)
        if code != OK
    }
    instability = [
        f"stage {st.name}: offered load {st.offered_load:.3f} >= 1 even in full batches of "
        f"{spec.max_batch}; its queue grows without bound (about {st.queue_growth_per_s:.1f} "
        "requests/s) unless requests are shed or time out"
        for st, spec in zip(stats, stages, strict=True)
        if st.offered_load >= 1.0
    ]
    n_measured = int(measured.sum())
    return SimResult(
        latency_ms=latency,
        stages=stats,
        completed=int(ok.sum()),
        dropped=sum(drops.values()),
        drops=drops,
        requests={"arrived": log.n, "measured": n_measured, "warmup": log.n - n_measured},
        unstable=bool(instability),
        instability=instability,
        timeseries=_timeseries(a, stages, info, replica_logs),
        records=log.to_frame([s.name for s in stages]),
        info=info,
        e2e_ms=e2e_ms,
    )

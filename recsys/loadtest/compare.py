"""Simulated vs measured: percentiles of two record tables, and service tables from records.

Both the simulator and the load test write per-request records in one format
(:meth:`recsys.sim.records.RequestLog.to_frame`), so one function computes the statistics of
either, over the same measurement window, and the comparison is like for like.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys.loadtest.run import LoadTestResult
from recsys.metrics_latency import percentile_ci
from recsys.profile.timing import PROFILE_COLUMNS

END_TO_END = "end_to_end"
QUANTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


def latency_columns(stages: Sequence[str]) -> dict[str, list[str]]:
    """Record columns whose sum is each stage's latency (wait + service), and end to end."""
    out = {s: [f"{s}_wait_ms", f"{s}_service_ms"] for s in stages}
    out[END_TO_END] = ["e2e_ms"]
    return out


def latencies_ms(
    records: pd.DataFrame,
    stages: Sequence[str],
    warmup_s: float,
    select: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Latency samples (ms) of completed requests that arrived at or after ``warmup_s``
    (and, with ``select``, a boolean per record, are selected)."""
    ok = (records["outcome"] == "ok").fillna(False).to_numpy(bool)
    measured = ok & (records["arrival_s"].to_numpy() >= warmup_s)
    if select is not None:
        measured &= select
    out = {}
    for name, cols in latency_columns(stages).items():
        values = sum(records[c].to_numpy(np.float64) for c in cols)
        out[name] = np.asarray(values)[measured]
    return out


def percentiles(samples: np.ndarray, qs: Sequence[float] = QUANTILES) -> dict[str, float]:
    """``{'p50_ms': ..}`` of ``samples`` (NaN when empty)."""
    if samples.size == 0:
        return {f"p{q:g}_ms": math.nan for q in qs}
    values = np.percentile(samples, list(qs))
    return {f"p{q:g}_ms": float(v) for q, v in zip(qs, values, strict=True)}


def relative_error(sim: float, real: float) -> float:
    """``(sim - real) / real``: positive when the simulator is pessimistic."""
    if not (math.isfinite(sim) and math.isfinite(real)) or real <= 0:
        return math.nan
    return (sim - real) / real


def compare(
    sim: Mapping[str, np.ndarray],
    real: Mapping[str, np.ndarray],
    qs: Sequence[float] = QUANTILES,
    n_batches: int = 20,
) -> dict[str, dict[str, Any]]:
    """Per stage (and ``end_to_end``): ``sim_pXX_ms``, ``real_pXX_ms``, ``err_pXX``, counts,
    and ``real_pXX_ci_ms``: the batch-means 95% interval of the measured percentile (samples
    in arrival order), i.e. how far a second measurement of the same thing could land."""
    out: dict[str, dict[str, Any]] = {}
    for name, real_samples in real.items():
        s, r = percentiles(sim[name], qs), percentiles(real_samples, qs)
        row: dict[str, Any] = {}
        for q in qs:
            key = f"p{q:g}"
            row[f"sim_{key}_ms"] = s[f"{key}_ms"]
            row[f"real_{key}_ms"] = r[f"{key}_ms"]
            row[f"err_{key}"] = relative_error(s[f"{key}_ms"], r[f"{key}_ms"])
        for q in qs:
            ci = percentile_ci(real_samples, q, n_batches) if real_samples.size else None
            row[f"real_p{q:g}_ci_ms"] = [ci.low, ci.high] if ci is not None else None
        row["n_sim"] = int(sim[name].size)
        row["n_real"] = int(real_samples.size)
        out[name] = row
    return out


def service_table(
    records: pd.DataFrame,
    stages: Sequence[str],
    warmup_s: float,
    dispatch_ms: Mapping[str, np.ndarray] | None = None,
    kinds: Mapping[str, str] | None = None,
    select: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """A profile table (``recsys.profile.timing`` columns) of the service times a load test saw.

    With ``dispatch_ms`` (per request, from :meth:`LoadTestResult.dispatch_ms`), each batch's
    time is its dispatch delay plus its service: how long the batch really held its worker
    from the moment it could have started. ``select`` (per stage, a boolean per request) keeps
    only some batches. ``n_candidates`` is 0 (not known from records).
    """
    parts = []
    for stage in stages:
        frame = records[[f"{stage}_start_s", f"{stage}_batch_size", f"{stage}_service_ms"]].copy()
        frame.columns = ["start_s", "batch_size", "service_ms"]
        if dispatch_ms is not None:
            frame["service_ms"] += np.nan_to_num(dispatch_ms[stage], nan=0.0).clip(min=0.0)
        keep = frame["start_s"].notna() & (records["arrival_s"] >= warmup_s)
        if select is not None:
            keep &= select[stage]
        frame = frame[keep].drop_duplicates("start_s")
        frame["stage"] = stage
        frame["kind"] = (kinds or {}).get(stage, stage)
        frame["n_candidates"] = 0
        parts.append(frame)
    table = pd.concat(parts, ignore_index=True)
    table["batch_size"] = table["batch_size"].astype(np.int64)
    return table[list(PROFILE_COLUMNS)]


def fill_batch_sizes(
    measured: pd.DataFrame, profiled: pd.DataFrame, min_samples: int = 20
) -> pd.DataFrame:
    """``measured`` rows for (stage, batch size) pairs with at least ``min_samples`` batches;
    the profiled rows for the others (a batch size the load test rarely formed)."""
    counts = measured.groupby(["stage", "batch_size"]).size()
    enough = set(counts[counts >= min_samples].index)
    pairs = zip(measured["stage"], measured["batch_size"], strict=True)
    # A boolean array, not a list: an empty list would select no columns instead of no rows.
    mask = np.array([(s, b) in enough for s, b in pairs], dtype=bool)
    measured = measured[mask].assign(source="load test")
    # The candidates per request are the profile's (the same stage inputs).
    n_in = profiled.groupby("stage")["n_candidates"].first()
    measured["n_candidates"] = measured["stage"].map(n_in).fillna(0).astype(np.int64)
    pairs = zip(profiled["stage"], profiled["batch_size"], strict=True)
    rest = profiled[np.array([(s, b) not in enough for s, b in pairs], dtype=bool)]
    rest = rest.assign(source="profile")
    return pd.concat([measured, rest], ignore_index=True)


def busy_fraction(real: LoadTestResult, stage: str) -> float:
    """Mean number of the stage's workers holding a batch (start to release) over the
    measured window (warm-up to last arrival); with one worker, the utilisation the level
    really had, which moves with the machine's speed even at a fixed arrival rate."""
    rec = real.records
    start, release = rec[f"{stage}_start_s"].to_numpy(), real.release_s[stage]
    keep = np.isfinite(start) & np.isfinite(release)
    if not keep.any():
        return math.nan
    # One row per batch: the requests of a batch share its start.
    _, first = np.unique(start[keep], return_index=True)
    lo, hi = real.warmup_s, float(rec["arrival_s"].max())
    if hi <= lo:
        return math.nan
    begin, end = start[keep][first], release[keep][first]
    held = np.clip(np.minimum(end, hi) - np.maximum(begin, lo), 0.0, None).sum()
    return float(held / (hi - lo))


def tail_episodes(
    records: pd.DataFrame, warmup_s: float, q: float = 99.0, gap_s: float = 0.05
) -> dict[str, float]:
    """How the requests above the ``q``-th percentile of end-to-end latency cluster in time.

    Requests above it that arrived within ``gap_s`` of one another form one **episode** (one
    slow spell of the server). ``episodes`` counts them; ``largest4_share`` is the share of
    the tail's requests in the 4 largest. A tail held by a handful of episodes is at the
    mercy of how many such spells fell in the run: its percentile moves between runs far
    more than the request count suggests.
    """
    ok = (records["outcome"] == "ok").fillna(False).to_numpy(bool)
    arrival = records["arrival_s"].to_numpy(np.float64)
    e2e = records["e2e_ms"].to_numpy(np.float64)
    chosen = ok & (arrival >= warmup_s) & np.isfinite(e2e)
    if chosen.sum() < 2:
        return {"episodes": 0, "largest4_share": math.nan, "tail_requests": 0}
    threshold = np.percentile(e2e[chosen], q)
    times = np.sort(arrival[chosen & (e2e >= threshold)])
    sizes = np.diff(np.r_[0, np.flatnonzero(np.diff(times) > gap_s) + 1, times.size])
    largest = np.sort(sizes)[::-1][:4].sum()
    return {
        "episodes": int(sizes.size),
        "largest4_share": float(largest / times.size),
        "tail_requests": int(times.size),
    }


def stage_diagnostics(
    real: LoadTestResult, profile: pd.DataFrame, stage: str, sim_records: pd.DataFrame
) -> dict[str, Any]:
    """What differs inside one stage: in-server vs profiled service, dispatch, batch sizes."""
    measured = real.records["arrival_s"].to_numpy() >= real.warmup_s
    rec = real.records[measured]
    served = rec[f"{stage}_start_s"].notna().to_numpy()
    batch = rec[f"{stage}_batch_size"].to_numpy()[served]
    service = rec[f"{stage}_service_ms"].to_numpy()[served]
    dispatch = real.dispatch_ms(stage)[measured][served]
    cpu = real.cpu_ms(stage)[measured][served]
    prof = profile.loc[profile["stage"] == stage]
    prof1 = prof.loc[prof["batch_size"] == 1, "service_ms"]
    sim = sim_records[sim_records["arrival_s"] >= real.warmup_s]
    sim_batch = sim[f"{stage}_batch_size"].to_numpy()
    sim_batch = sim_batch[sim_batch > 0]
    single = batch == 1
    return {
        "real_busy_fraction": busy_fraction(real, stage),
        "real_service_b1_p50_ms": float(np.median(service[single])) if single.any() else None,
        "real_cpu_b1_p50_ms": float(np.median(cpu[single])) if single.any() else None,
        "profiled_service_b1_p50_ms": float(np.median(prof1)) if len(prof1) else None,
        "real_dispatch_p50_ms": float(np.nanmedian(dispatch)) if dispatch.size else None,
        "real_dispatch_p99_ms": float(np.nanpercentile(dispatch, 99)) if dispatch.size else None,
        "real_mean_batch": float(batch.size / np.sum(1.0 / batch)) if batch.size else None,
        "real_warm_fraction": float(np.mean(real.warm[stage][measured][served]))
        if stage in real.warm and served.any()
        else None,
        "sim_mean_batch": float(sim_batch.size / np.sum(1.0 / sim_batch))
        if sim_batch.size
        else None,
    }

"""Calibration: how far the simulator's percentiles are from a real load test, per load level.

For one pairing (its live stages, its profile) and each utilisation level:

1. the arrival rate is ``utilization x capacity``; capacity is measured by saturating the live
   server (``capacity="measured"``: the most it really serves) or derived from the profile
   (``"profile"``: ``workers x max_batch / mean service(max_batch)`` of the slowest stage);
2. a **probe** load test at that rate (its own arrivals) yields what the stages really cost
   while serving together, measured in the server: how long each batch held its worker (its
   dispatch delay - wake-up and GIL hand-over -, its service, and handing its results on),
   the ingress delay of each request (scheduled arrival to the first queue: the receive
   path) and the hand-off delay into each later queue. That is the **calibrated** model;
3. the **main** load test (other arrivals) is the measurement;
4. the simulator replays exactly the main test's arrivals with the profile of each stage timed
   alone (**profiled**, what ``recsys-sim`` predicts) and with the calibrated profile, each
   ``sim_replications`` times (other service-time draws, samples pooled), so the simulated
   percentiles carry little sampling noise of their own.

Errors are ``(sim - real) / real`` of p50/p95/p99 per stage and end to end. The measured
percentiles come with batch-means 95% intervals: the sampling noise of the measurement itself
(at 70% utilisation, 4000 requests, p99 moves by about 13% between runs; 10000: about 5%).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.errors import ConfigError, DataError
from recsys.loadtest.compare import (
    END_TO_END,
    QUANTILES,
    compare,
    latencies_ms,
    stage_diagnostics,
    tail_episodes,
)
from recsys.loadtest.model import (
    SimModel,
    calibrated_model,
    model_inputs,
    profiled_models,
    simulate_pooled,
)
from recsys.loadtest.run import (
    GENERATORS,
    LoadTestLimits,
    LoadTestResult,
    from_detailed,
    run_loadtest,
)
from recsys.loadtest.server import LiveStage
from recsys.sim.service import ServiceTimeModel
from recsys.sim.workload import Workload

log = logging.getLogger(__name__)

MODELS = ("profiled", "calibrated")
# Bisection rounds of the capacity measurement, and the share of a trial rate a server must
# serve while arrivals come to count as keeping up with it.
CAPACITY_ROUNDS = 4
KEPT_UP = 0.97
# A trial the server kept up with, with no upper bound found yet, is followed by one this
# much faster.
STEP_UP = 1.25


@dataclass(frozen=True)
class CalibrationOptions:
    """Levels, run sizes and the capacity the levels are fractions of."""

    utilizations: tuple[float, ...] = (0.3, 0.5, 0.7, 0.85)
    n_requests: int = 20000
    warmup_requests: int = 500
    probe_requests: int = 20000
    capacity: str = "measured"
    capacity_requests: int = 2000
    min_batch_samples: int = 20
    sim_replications: int = 20
    drift_window_ms: float = 100.0
    drift_block_windows: int = 10
    drift_replay: bool = False
    stall_min_ms: float = 0.0
    warp_window_ms: float = 10.0
    warp_block_windows: int = 100
    warp_shrink: float = 0.0
    interleave_s: float = 0.05
    generator: str = "process"
    gc_freeze: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.utilizations or not all(0 < u < 1.5 for u in self.utilizations):
            raise ConfigError(
                f"calibration utilizations must lie in (0, 1.5), got {list(self.utilizations)}"
            )
        if self.capacity not in ("measured", "profile"):
            raise ConfigError(f"calibration capacity must be measured or profile: {self.capacity}")
        if self.n_requests < 2 or not 0 <= self.warmup_requests < self.n_requests:
            raise ConfigError("calibration needs n_requests >= 2 and 0 <= warmup_requests < it")
        if self.probe_requests < 0 or self.capacity_requests < 10:
            raise ConfigError("calibration probe_requests must be >= 0, capacity_requests >= 10")
        if self.sim_replications < 1:
            raise ConfigError("calibration sim_replications must be >= 1")
        if not (math.isfinite(self.drift_window_ms) and self.drift_window_ms >= 0):
            raise ConfigError("calibration drift_window_ms must be >= 0 (0: no drift model)")
        if not (math.isfinite(self.interleave_s) and self.interleave_s >= 0):
            raise ConfigError("calibration interleave_s must be >= 0 (0: a separate probe run)")
        if not (math.isfinite(self.stall_min_ms) and self.stall_min_ms >= 0):
            raise ConfigError("calibration stall_min_ms must be >= 0 (0: no stall model)")
        if self.drift_block_windows < 1:
            raise ConfigError("calibration drift_block_windows must be >= 1")
        if not (math.isfinite(self.warp_window_ms) and self.warp_window_ms >= 0):
            raise ConfigError("calibration warp_window_ms must be >= 0 (0: no slow-spell model)")
        if self.warp_block_windows < 1:
            raise ConfigError("calibration warp_block_windows must be >= 1")
        if not (math.isfinite(self.warp_shrink) and self.warp_shrink >= 0):
            raise ConfigError("calibration warp_shrink must be >= 0")
        if self.warp_window_ms > 0 and self.stall_min_ms > 0:
            raise ConfigError(
                "calibration takes stall_min_ms or warp_window_ms, not both (set one to 0)"
            )
        if self.generator not in GENERATORS:
            raise ConfigError(f"loadtest.generator must be one of {list(GENERATORS)}")


@dataclass(frozen=True, eq=False)
class Pairing:
    """One retrieval + ranking pairing ready to serve: live stages, their profile, users."""

    name: str
    stages: list[LiveStage]
    profile: pd.DataFrame
    users: np.ndarray
    workload: Workload


@dataclass(eq=False)
class Level:
    """One utilisation level of one pairing: the rows for ``calibration.json`` and the samples
    for the CDF plots."""

    utilization: float
    rows: list[dict[str, Any]]
    real: dict[str, np.ndarray]
    sim: dict[str, dict[str, np.ndarray]]
    status: str
    message: str


@dataclass(eq=False)
class PairingResult:
    """Every level of one pairing, and how its capacity was found."""

    name: str
    stages: list[str]
    capacity_qps: float
    capacity: dict[str, Any]
    levels: list[Level] = field(default_factory=list)
    records: dict[float, pd.DataFrame] = field(default_factory=dict)
    serving: dict[str, dict[str, Any]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [row for level in self.levels for row in level.rows]


SERVING_FIELDS = (
    "replicas",
    "workers_per_replica",
    "max_batch",
    "max_wait_ms",
    "queue_capacity",
    "timeout_ms",
)


def serving_of(stages: Sequence[LiveStage]) -> dict[str, dict[str, Any]]:
    """How each stage was served (replicas, workers, batching, queue, timeout)."""
    return {s.name: {f: getattr(s, f) for f in SERVING_FIELDS} for s in stages}


# -- capacity and arrivals ------------------------------------------------------------------


def profile_capacity_qps(
    stages: Sequence[LiveStage], models: Mapping[str, ServiceTimeModel]
) -> dict[str, float]:
    """Requests/s each stage serves when busy in full batches of ``max_batch``."""
    return {s.name: s.workers * s.max_batch / models[s.name].mean_s(s.max_batch) for s in stages}


def measure_capacity_qps(
    stages: Sequence[LiveStage],
    users: np.ndarray,
    n_requests: int,
    rng: np.random.Generator,
    limits: LoadTestLimits,
    rounds: int = CAPACITY_ROUNDS,
) -> dict[str, Any]:
    """The most requests per second the live server sustains: ``qps``, with ``burst_qps``
    and the ``rounds`` that found it.

    Capacity is the arrival rate at which the bottleneck stage is just kept busy while every
    stage, and the receiver, work at that same rate beside it: on 2 cores the stages slow
    one another (cores, the GIL), so the bottleneck's speed depends on how hard the others
    work. A burst (``n_requests`` queued at once) overstates it: the first stage clears its
    queue early and the bottleneck then runs alone. An even stream above capacity
    understates it: the stages before the bottleneck then work at the stream's rate, not at
    the capacity's (measured here: MLP-large took 1.4 ms a request with retrieval taking
    1600 requests/s beside it, 0.5 ms alone). So the rate is bisected: each round streams
    ``2 n_requests`` evenly spaced arrivals at a trial rate (the burst's first) and counts
    the completions per second *while arrivals still come* (:func:`sustained_rate`). A
    server that keeps up (within :data:`KEPT_UP`) shows the capacity is at least that
    rate; one that falls behind shows it is below the rate, and at least what it served.
    ``qps`` is the middle of the last bracket.
    """
    saturate = LoadTestLimits(
        max_requests=max(limits.max_requests, 2 * n_requests),
        max_duration_s=limits.max_duration_s,
        max_lag_ms=math.inf,
        abort_lag_ms=math.inf,
        drain_s=limits.drain_s,
        max_in_flight=2 * n_requests + 1,
    )
    burst = run_loadtest(
        np.zeros(n_requests), stages, rng.choice(users, n_requests), limits=saturate
    )
    burst_qps = _completion_rate(burst.records, 0.1, 0.9)
    n = 2 * n_requests
    lo, hi, rate = 0.0, math.inf, burst_qps
    trials = []
    for _ in range(max(1, rounds)):
        stream = run_loadtest(np.arange(n) / rate, stages, rng.choice(users, n), limits=saturate)
        served = sustained_rate(stream.records)
        trials.append({"rate_qps": rate, "served_qps": served})
        if served >= KEPT_UP * rate:
            lo = max(lo, served)
            rate = STEP_UP * rate if math.isinf(hi) else (lo + hi) / 2.0
        else:
            lo, hi = max(lo, served), min(hi, rate)
            rate = (lo + hi) / 2.0
    qps = lo if math.isinf(hi) else (lo + hi) / 2.0
    if lo <= 0.0:
        raise ConfigError(
            "capacity run: no request completed while arrivals came, in any round "
            f"(trial rates {[round(t['rate_qps']) for t in trials]} QPS)"
        )
    return {"burst_qps": burst_qps, "qps": qps, "rounds": trials}


def sustained_rate(records: pd.DataFrame, from_frac: float = 0.25) -> float:
    """Completions per second while requests were still arriving: from the arrival at
    ``from_frac`` of the stream to the last arrival (the server saturated by an overdriven
    stream: its rate then is what it sustains with every thread at work; a stream it keeps
    up with: the stream's own rate). A server held up for the whole stretch (a cold first
    batch, the host) served little or nothing: a low rate, which the bisection reads as
    "did not keep up" and follows with a slower stream."""
    arrival = np.sort(records["arrival_s"].to_numpy(np.float64))
    done = records["done_s"].to_numpy(np.float64)
    lo, hi = float(arrival[int(from_frac * (arrival.size - 1))]), float(arrival[-1])
    if hi <= lo:
        raise ConfigError("capacity run: the stream is too short to measure a rate")
    served = int(np.count_nonzero((done >= lo) & (done <= hi)))
    return served / (hi - lo)


def _completion_rate(records: pd.DataFrame, lo_frac: float, hi_frac: float) -> float:
    """Completions per second between two fractions of the sorted completion times."""
    done = np.sort(records["done_s"].dropna().to_numpy())
    if done.size < 10:
        raise ConfigError("capacity run: too few requests completed to measure a rate")
    lo, hi = int(lo_frac * done.size), int(hi_frac * done.size)
    if done[hi - 1] <= done[lo]:
        raise ConfigError("capacity run: completions too close together to measure a rate")
    return (hi - 1 - lo) / float(done[hi - 1] - done[lo])


def arrivals_at(
    workload: Workload, rate_qps: float, n_requests: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_requests`` arrivals of ``workload``, time-scaled to a mean rate of ``rate_qps``.

    The shape of the traffic (Poisson, bursts, a replayed trace) is kept; only its clock is
    stretched, so the simulator and the load test see exactly these times.
    """
    times = np.asarray(workload.arrivals(rng, n_requests=n_requests), dtype=np.float64)
    if times.size < 2 or times[-1] <= times[0]:
        raise ConfigError("the workload gave fewer than 2 distinct arrivals")
    times = times - times[0]
    own_rate = (times.size - 1) / times[-1]
    return times * (own_rate / rate_qps)


# -- one level ------------------------------------------------------------------------------


def load_test(
    pairing: Pairing,
    rate: float,
    n_requests: int,
    options: CalibrationOptions,
    limits: LoadTestLimits,
    rng: np.random.Generator,
) -> tuple[np.ndarray, LoadTestResult]:
    """``n_requests`` of the pairing's traffic at ``rate``, served live; the arrivals and the
    result (its first ``warmup_requests`` left out of the statistics)."""
    arrivals = arrivals_at(pairing.workload, rate, n_requests, rng)
    warmup_s = float(arrivals[min(options.warmup_requests, arrivals.size - 1)])
    users = rng.choice(pairing.users, arrivals.size)
    result = run_loadtest(
        arrivals,
        pairing.stages,
        users,
        warmup_s=warmup_s,
        limits=limits,
        generator=options.generator,
        gc_freeze=options.gc_freeze,
    )
    return arrivals, result


def probe_chunks(arrivals: np.ndarray, warmup_s: float, chunk_s: float) -> np.ndarray:
    """Which requests belong to the probe when it is interleaved with the measurement: after
    the warm-up, time is cut into chunks of ``chunk_s``; the odd chunks are the probe's, the
    even ones are measured."""
    chunk = np.floor((arrivals - warmup_s) / chunk_s).astype(np.int64)
    return (arrivals >= warmup_s) & (chunk % 2 == 1)


def _calibrated(
    probe: LoadTestResult,
    pairing: Pairing,
    options: CalibrationOptions,
    select: np.ndarray | None = None,
) -> SimModel | None:
    """The calibrated simulator inputs from the requests ``select`` of a load test (None if
    none of them completed)."""
    ok = probe.records["outcome"].eq("ok").to_numpy()
    if not (ok if select is None else ok & select).any():
        return None
    model, _ = calibrated_model(
        probe,
        pairing.profile,
        [s.name for s in pairing.stages],
        options.min_batch_samples,
        drift_window_ms=options.drift_window_ms,
        drift_block=options.drift_block_windows,
        drift_replay=options.drift_replay,
        stall_min_ms=options.stall_min_ms,
        warp_window_ms=options.warp_window_ms,
        warp_block=options.warp_block_windows,
        warp_shrink=options.warp_shrink,
        select=select,
    )
    return model


@dataclass(frozen=True, eq=False)
class Measured:
    """One level's load test as the analysis takes it: the arrivals, the result, which
    requests are measured (None: all after the warm-up), the calibrated model (None without
    a probe) and the separate probe run's status (None when interleaved or absent)."""

    arrivals: np.ndarray
    real: LoadTestResult
    held_out: np.ndarray | None
    calibrated: SimModel | None
    probe_status: str | None


def _measure(
    pairing: Pairing,
    rate: float,
    options: CalibrationOptions,
    limits: LoadTestLimits,
    rng: np.random.Generator,
) -> Measured:
    """The level's load test(s).

    With ``interleave_s`` > 0 the probe and the measurement share one run in alternating
    chunks, so the model is fitted on the same machine, minutes and drift as the requests it
    is held against, never on those requests; else a separate probe run comes first.
    """
    if options.probe_requests and options.interleave_s > 0:
        n = options.n_requests + options.probe_requests
        arrivals, real = load_test(pairing, rate, n, options, limits, rng)
        probe = probe_chunks(arrivals, real.warmup_s, options.interleave_s)
        held_out = (arrivals >= real.warmup_s) & ~probe
        return Measured(
            arrivals, real, held_out, _calibrated(real, pairing, options, probe), real.status
        )
    calibrated, probe_status = None, None
    if options.probe_requests:
        _, probe_run = load_test(pairing, rate, options.probe_requests, options, limits, rng)
        calibrated, probe_status = _calibrated(probe_run, pairing, options), probe_run.status
    arrivals, real = load_test(pairing, rate, options.n_requests, options, limits, rng)
    return Measured(arrivals, real, None, calibrated, probe_status)


def run_level(
    pairing: Pairing,
    utilization: float,
    capacity_qps: float,
    options: CalibrationOptions,
    limits: LoadTestLimits,
    rng: np.random.Generator,
) -> tuple[Level, pd.DataFrame]:
    """Probe, measure and simulate one level; the level and the real records in detail
    (:meth:`~recsys.loadtest.run.LoadTestResult.detailed_records`)."""
    measured = _measure(pairing, utilization * capacity_qps, options, limits, rng)
    return analyse_level(
        pairing, utilization, capacity_qps, options, measured, level_seed(options, utilization)
    )


def level_seed(options: CalibrationOptions, utilization: float) -> int:
    """The simulations' seed at a level: from the run's seed and the level alone, so that a
    re-analysis of the saved records with the same settings reproduces the report."""
    rng = np.random.default_rng([options.seed, round(1000 * utilization)])
    return int(rng.integers(2**31))


def reanalyse_level(
    pairing: Pairing,
    utilization: float,
    capacity_qps: float,
    options: CalibrationOptions,
    frame: pd.DataFrame,
    *,
    status: str,
    seed: int,
) -> tuple[Level, pd.DataFrame]:
    """One level again from its saved detailed records (an earlier run's
    ``records/<pairing>_uNN.parquet``, interleaved probe): the calibrated model fitted anew
    with ``options`` and both models simulated again, without a load test. ``status`` is the
    earlier run's verdict on the load test."""
    names = [s.name for s in pairing.stages]
    if "probe" not in frame.columns or "arrival_s" not in frame.columns:
        raise DataError("saved load-test records lack the columns arrival_s and probe")
    arrivals = frame["arrival_s"].to_numpy(np.float64)
    if arrivals.size < 2 or not np.all(np.diff(arrivals) >= 0):
        raise DataError("saved load-test records must hold >= 2 requests in arrival order")
    probe = frame["probe"].to_numpy(bool)
    if not probe.any():
        raise DataError(
            "saved load-test records hold no probe requests: only a run with an interleaved "
            "probe (loadtest.calibration.interleave_s > 0) can be analysed again"
        )
    warmup_s = float(arrivals[min(options.warmup_requests, arrivals.size - 1)])
    real = dataclasses.replace(from_detailed(frame, names, warmup_s), status=status)
    held_out = (arrivals >= warmup_s) & ~probe
    calibrated = _calibrated(real, pairing, options, probe)
    measured = Measured(arrivals, real, held_out, calibrated, status)
    return analyse_level(pairing, utilization, capacity_qps, options, measured, seed)


def analyse_level(
    pairing: Pairing,
    utilization: float,
    capacity_qps: float,
    options: CalibrationOptions,
    measured: Measured,
    seed: int,
) -> tuple[Level, pd.DataFrame]:
    """Simulate one measured level with every model and compare; the level and the real
    records in detail."""
    names = [s.name for s in pairing.stages]
    rate = utilization * capacity_qps
    models: dict[str, SimModel] = {"profiled": SimModel(profiled_models(pairing.profile, names))}
    arrivals, real, held_out = measured.arrivals, measured.real, measured.held_out
    if measured.calibrated is not None:
        models["calibrated"] = measured.calibrated
    warmup_s = real.warmup_s
    probe = None if held_out is None else (arrivals >= warmup_s) & ~held_out
    real_lat = latencies_ms(real.records, names, warmup_s, held_out)
    sims, comparisons, sim_records = {}, {}, {}
    for model_name, model in models.items():
        sims[model_name], sim_records[model_name] = simulate_pooled(
            arrivals,
            pairing.stages,
            model,
            seed=seed,
            warmup_s=warmup_s,
            replications=options.sim_replications,
            select=held_out,
        )
        comparisons[model_name] = compare(sims[model_name], real_lat)
    # A second real measurement of the same level: the interleaved probe's own requests
    # against the measured ones. Their disagreement is the noise floor of the comparison (a
    # simulator cannot be shown closer to the measurement than the machine is to itself).
    repeat = None
    if probe is not None:
        repeat = compare(latencies_ms(real.records, names, warmup_s, probe), real_lat)
    primary = "calibrated" if "calibrated" in models else "profiled"
    gen = real.generator()
    span = float(arrivals[-1] - arrivals[0])
    common = {
        "pairing": pairing.name,
        "utilization": utilization,
        "target_qps": rate,
        "offered_qps": (arrivals.size - 1) / span if span > 0 else math.nan,
        "capacity_qps": capacity_qps,
        "status": real.status,
        "probe_status": measured.probe_status,
        "generator_lag_p50_ms": gen["lag_p50_ms"],
        "generator_lag_p99_ms": gen["lag_p99_ms"],
    }
    rows = []
    for stage in [*names, END_TO_END]:
        row: dict[str, Any] = {"stage": stage, "model": primary, **comparisons[primary][stage]}
        row.update(common)
        for model_name in models:
            row[model_name] = comparisons[model_name][stage]
        if repeat is not None:
            row["repeat"] = {
                k.replace("sim_", "probe_"): v
                for k, v in repeat[stage].items()
                if not k.endswith("_ci_ms")
            }
        if stage != END_TO_END:
            row["diagnostics"] = stage_diagnostics(
                real, pairing.profile, stage, sim_records["profiled"]
            )
        else:
            # How the slowest requests cluster in time, measured and simulated (whole run).
            row["tail"] = {"real": tail_episodes(real.records, warmup_s)} | {
                name: tail_episodes(sim_records[name], warmup_s) for name in models
            }
        if "calibrated" in models:
            row["calibrated_inputs"] = model_inputs(models["calibrated"], stage)
        rows.append(row)
    level = Level(utilization, rows, real_lat, sims, real.status, real.message)
    return level, real.detailed_records(probe)


def calibrate_pairing(
    pairing: Pairing,
    options: CalibrationOptions,
    limits: LoadTestLimits,
) -> PairingResult:
    """Capacity, then every level of ``options`` for one pairing."""
    names = [s.name for s in pairing.stages]
    rng = np.random.default_rng(options.seed)
    per_stage = profile_capacity_qps(pairing.stages, profiled_models(pairing.profile, names))
    from_profile = min(per_stage.values())
    capacity: dict[str, Any] = {
        "basis": options.capacity,
        "profile_qps": from_profile,
        "profile_bottleneck": min(per_stage, key=per_stage.__getitem__),
        "profile_per_stage_qps": per_stage,
    }
    if options.capacity == "measured":
        started = time.perf_counter()
        rates = measure_capacity_qps(
            pairing.stages, pairing.users, options.capacity_requests, rng, limits
        )
        measured = rates["qps"]
        capacity["measured_qps"] = measured
        capacity["burst_qps"] = rates["burst_qps"]
        capacity["rounds"] = rates["rounds"]
        log.info(
            "%s: capacity %.0f QPS sustained (%.0f in a burst; %.1f s), %.0f from the profile",
            pairing.name,
            measured,
            rates["burst_qps"],
            time.perf_counter() - started,
            from_profile,
        )
    chosen = capacity["measured_qps"] if options.capacity == "measured" else from_profile
    result = PairingResult(
        pairing.name, names, float(chosen), capacity, serving=serving_of(pairing.stages)
    )
    for u in options.utilizations:
        started = time.perf_counter()
        level, records = run_level(pairing, u, chosen, options, limits, rng)
        _add_level(result, level, records, time.perf_counter() - started)
    if options.capacity == "measured":
        # Measured again: a machine whose capacity changed during the levels (other processes
        # came or went) makes every level's utilisation wrong, and the report says so.
        after = measure_capacity_qps(
            pairing.stages, pairing.users, options.capacity_requests, rng, limits
        )["qps"]
        capacity["measured_after_qps"] = after
        log.info("%s: capacity %.0f QPS measured after the levels", pairing.name, after)
    return result


def reanalyse_pairing(
    pairing: Pairing,
    options: CalibrationOptions,
    capacity_qps: float,
    capacity: Mapping[str, Any],
    levels: Sequence[tuple[float, pd.DataFrame, str]],
) -> PairingResult:
    """An earlier calibration of ``pairing`` analysed again with ``options``' models: per
    level ``(utilization, detailed records, status)``, no load test and no capacity
    measurement (``capacity_qps`` and ``capacity`` are the earlier run's)."""
    names = [s.name for s in pairing.stages]
    result = PairingResult(
        pairing.name, names, float(capacity_qps), dict(capacity), serving=serving_of(pairing.stages)
    )
    for u, frame, status in levels:
        started = time.perf_counter()
        seed = level_seed(options, u)
        level, records = reanalyse_level(
            pairing, u, capacity_qps, options, frame, status=status, seed=seed
        )
        _add_level(result, level, records, time.perf_counter() - started)
    return result


def _add_level(result: PairingResult, level: Level, records: pd.DataFrame, took_s: float) -> None:
    result.levels.append(level)
    result.records[level.utilization] = records
    e2e = next(r for r in level.rows if r["stage"] == END_TO_END)
    log.info(
        "%s at %.0f%% (%.0f QPS, %.1f s): real p50 %.3f p99 %.3f ms; sim (%s) p50 %.3f "
        "p99 %.3f ms; %s",
        result.name,
        100 * level.utilization,
        level.utilization * result.capacity_qps,
        took_s,
        e2e["real_p50_ms"],
        e2e["real_p99_ms"],
        e2e["model"],
        e2e["sim_p50_ms"],
        e2e["sim_p99_ms"],
        level.status,
    )


__all__ = [
    "MODELS",
    "QUANTILES",
    "CalibrationOptions",
    "Level",
    "Measured",
    "Pairing",
    "PairingResult",
    "analyse_level",
    "arrivals_at",
    "calibrate_pairing",
    "level_seed",
    "measure_capacity_qps",
    "profile_capacity_qps",
    "reanalyse_level",
    "reanalyse_pairing",
    "serving_of",
    "sustained_rate",
]

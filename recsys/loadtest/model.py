"""What the simulator is given to reproduce a load test, and how it is run on it.

Two models of the same live stages (:mod:`recsys.loadtest.calibrate` compares both with the
measurement):

- **profiled**: each stage's stand-alone profile (timed alone, back to back), what
  ``recsys-sim`` predicts;
- **calibrated**: what a probe load test measured inside the server: how long each batch
  held its worker, warm and cold apart, with the slowdown from co-located batches
  (:mod:`recsys.loadtest.contention`) and the machine's drift in time
  (:mod:`recsys.loadtest.drift`) taken out and given to the simulator as such; the ingress
  delay of each request and the hand-off into each later stage.

:func:`simulate_pooled` replays given arrivals through either, several times, and pools the
latency samples.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.errors import ConfigError
from recsys.loadtest.compare import END_TO_END, fill_batch_sizes, latencies_ms
from recsys.loadtest.contention import estimate as estimate_contention
from recsys.loadtest.drift import Drift, estimate_drift
from recsys.loadtest.run import LoadTestResult
from recsys.loadtest.server import LiveStage
from recsys.loadtest.stalls import destall, detect_stalls
from recsys.loadtest.warp import estimate_warp
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import EmpiricalServiceTime, ServiceTimeModel, WarmColdServiceTime
from recsys.sim.slowdown import block_draws, bootstrap_path
from recsys.sim.stalls import StallModel, unwarp_records
from recsys.sim.warp import WarpModel

# Ingress delays are drawn in runs of this many consecutive requests (see block_draws).
INGRESS_BLOCK = 200


def profiled_models(profile: pd.DataFrame, stages: Sequence[str]) -> dict[str, ServiceTimeModel]:
    return {s: EmpiricalServiceTime.from_table(profile, stage=s) for s in stages}


@dataclass(frozen=True, eq=False)
class SimModel:
    """What the simulator is given for one comparison.

    ``services``: each stage's service-time model (how long a batch holds its worker).
    ``ingress_ms``: samples of the delay between a request's scheduled arrival and its joining
    the first queue (the server's receive path), drawn per request; None for none.
    ``handoff_ms``: a constant delay into each later stage (results handed from one stage's
    thread to the next stage's queue), the simulator's ``network_ms``. ``contention``: per
    stage, how much co-located batches slow it (``StageSpec.contention``). ``drift``: how the
    machine's speed drifted in time (:mod:`recsys.loadtest.drift`); each simulation draws its
    own path of it in blocks of ``drift_block`` windows, shared by every stage
    (``StageSpec.slowdown``); with ``drift_replay`` every simulation replays the measured
    path itself, in time (:meth:`~recsys.loadtest.drift.Drift.replay_path`). ``stalls``:
    how often the whole process stood still and for how long (:mod:`recsys.sim.stalls`);
    each simulation runs on the server's clock through its own draw of them. ``warp``: how
    much slower than usual the whole process ran in short windows (:mod:`recsys.sim.warp`);
    each simulation runs on its own draw of such a clock (not together with ``stalls``).
    ``after_ms``: per stage, how long a worker stays busy after its batch's requests left
    (``StageSpec.after_ms``: handing results on and the bookkeeping after them are inside
    the hold time, but the requests do not wait for them).
    """

    services: dict[str, ServiceTimeModel]
    ingress_ms: np.ndarray | None = None
    handoff_ms: dict[str, float] = field(default_factory=dict)
    contention: dict[str, float] = field(default_factory=dict)
    drift: Drift | None = None
    drift_block: int = 10
    drift_replay: bool = False
    stalls: StallModel | None = None
    warp: WarpModel | None = None
    after_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stalls is not None and self.warp is not None:
            raise ConfigError("a model takes stalls or a clock warp, not both")


def sim_specs(
    stages: Sequence[LiveStage],
    models: Mapping[str, ServiceTimeModel],
    handoff_ms: Mapping[str, float] | None = None,
    contention: Mapping[str, float] | None = None,
    after_ms: Mapping[str, float] | None = None,
) -> list:
    """Simulator stages with the live stages' settings; network delay only where measured
    (``handoff_ms``), as the stages share one process; ``contention`` and ``after_ms`` where
    measured."""
    return [
        StageSpec(
            name=s.name,
            service=models[s.name],
            replicas=s.replicas,
            workers_per_replica=s.workers_per_replica,
            max_batch=s.max_batch,
            max_wait_ms=s.max_wait_ms,
            queue_capacity=s.queue_capacity,
            timeout_ms=s.timeout_ms,
            network_ms=float((handoff_ms or {}).get(s.name, 0.0)),
            contention=float((contention or {}).get(s.name, 0.0)),
            after_ms=float((after_ms or {}).get(s.name, 0.0)),
        )
        for s in stages
    ]


def calibrated_model(
    probe: LoadTestResult,
    profile: pd.DataFrame,
    stages: Sequence[str],
    min_samples: int,
    drift_window_ms: float = 0.0,
    drift_block: int = 10,
    select: np.ndarray | None = None,
    drift_replay: bool = False,
    stall_min_ms: float = 0.0,
    warp_window_ms: float = 0.0,
    warp_block: int = 100,
    warp_shrink: float = 0.0,
) -> tuple[SimModel, pd.DataFrame]:
    """The simulator's inputs as a probe load test measured them inside the server.

    A batch's service time is how long it held its worker (dispatch delay + service + handing
    its results on: :meth:`LoadTestResult.hold_ms`), with the slowdown from the batches in
    service beside it taken out (:mod:`recsys.loadtest.contention`; the simulator puts it back
    through ``StageSpec.contention``), apart for batches started warm (the worker went
    straight on from its last batch) and cold (it was idle and had to be woken):
    :class:`~recsys.sim.service.WarmColdServiceTime`. Batch sizes with fewer than
    ``min_samples`` batches in a state take the stand-alone profile (timed alone and back to
    back). With ``drift_window_ms`` > 0 the machine's drift in windows of that length is
    divided out of the work too (:func:`~recsys.loadtest.drift.estimate_drift`) and kept in
    the model, which the simulator puts back in time (block-bootstrapped paths, or with
    ``drift_replay`` the measured path itself, aligned with the run). The receive path
    before the first queue and the hand-off into each later queue are delays outside the
    workers. Only the requests of ``select`` (a boolean per request; default: those after
    the warm-up) and their batches count. With ``stall_min_ms`` > 0 the stalls of the whole
    process from that long (:func:`~recsys.loadtest.stalls.detect_stalls`) are cut out of
    the run before anything else is fitted (:func:`~recsys.loadtest.stalls.destall`), and
    their rate and lengths, counted where the selected requests were, are the model's
    ``stalls``. With ``warp_window_ms`` > 0 the slow spells of the whole process in windows
    of that length (:func:`~recsys.loadtest.warp.estimate_warp`, shrunk by ``warp_shrink``)
    are taken out the same way (the run mapped onto the clock they define) and kept as the
    model's ``warp``, drawn in blocks of ``warp_block`` windows. Returns the model and its
    table (profile columns plus ``state``).
    """
    chosen = probe.records["arrival_s"].to_numpy() >= probe.warmup_s if select is None else select
    if stall_min_ms > 0 and warp_window_ms > 0:
        raise ConfigError("calibration takes stall_min_ms or warp_window_ms, not both")
    stalls, warp = None, None
    if stall_min_ms > 0:
        stalls, probe = _stalls(probe, chosen, stall_min_ms)
    if warp_window_ms > 0:
        clock, factors = estimate_warp(probe, chosen, warp_window_ms / 1000.0, warp_shrink)
        warp = WarpModel(window_s=warp_window_ms / 1000.0, factors=factors, block=warp_block)
        probe = destall(probe, clock)
    contention, batches = estimate_contention(probe, stages, chosen)
    batches = batches[batches["measured"]]
    drift = None
    if drift_window_ms > 0:
        drift, batches = estimate_drift(batches, drift_window_ms / 1000.0)
    tables, services = {}, {}
    for state in ("warm", "cold"):
        in_state = batches[batches["warm"] == (state == "warm")]
        measured = pd.DataFrame(
            {
                "stage": in_state["stage"],
                "kind": in_state["stage"],
                "batch_size": in_state["batch_size"],
                "n_candidates": 0,
                "service_ms": in_state["work_ms"],
            }
        )
        filled = fill_batch_sizes(measured, profile, min_samples)
        tables[state] = filled.assign(state=state)
    for s in stages:
        warm, cold = (profiled_models(tables[k], [s])[s] for k in ("warm", "cold"))
        services[s] = WarmColdServiceTime(warm=warm, cold=cold)
    table = pd.concat(tables.values(), ignore_index=True)
    ingress = probe.ingress_ms()[chosen]
    ingress = ingress[np.isfinite(ingress)].clip(min=0.0)
    model = SimModel(
        services=services,
        ingress_ms=ingress if ingress.size else None,
        handoff_ms=handoff_ms(probe.records[chosen], stages),
        contention=contention,
        after_ms=after_ms(probe, stages, chosen),
        drift=drift,
        drift_block=drift_block,
        drift_replay=drift_replay,
        stalls=stalls,
        warp=warp,
    )
    return model, table


def _stalls(
    run: LoadTestResult, chosen: np.ndarray, min_ms: float
) -> tuple[StallModel, LoadTestResult]:
    """The stall model of a run (stalls that began among the ``chosen`` requests, per second
    of their share of the run) and the run with every stall cut out."""
    path = detect_stalls(run, min_ms)
    arrival = run.records["arrival_s"].to_numpy(np.float64)
    after = arrival >= run.warmup_s
    span = float(arrival[after].max() - arrival[after].min()) if after.sum() > 1 else 0.0
    share = float(chosen[after].mean()) if after.any() else 0.0
    # A stall belongs to the request due last before it began.
    owner = np.clip(np.searchsorted(arrival, path.starts_s, side="right") - 1, 0, None)
    mine = chosen[owner] if len(path) else np.zeros(0, bool)
    seconds = span * share
    rate = float(mine.sum()) / seconds if seconds > 0 else 0.0
    model = StallModel(rate_per_s=rate, durations_s=path.durations_s[mine])
    return model, destall(run, path)


def handoff_ms(records: pd.DataFrame, stages: Sequence[str]) -> dict[str, float]:
    """Median time from a stage's batch finishing to its requests joining the next queue."""
    out = {}
    for before, stage in itertools.pairwise(stages):
        done = records[f"{before}_start_s"] + records[f"{before}_service_ms"] / 1000.0
        gap = (records[f"{stage}_enqueue_s"] - done).to_numpy() * 1000.0
        gap = gap[np.isfinite(gap)]
        out[stage] = max(float(np.median(gap)), 0.0) if gap.size else 0.0
    return out


def after_ms(result: LoadTestResult, stages: Sequence[str], select: np.ndarray) -> dict[str, float]:
    """Per stage, the median time from a batch's work ending (its requests handed on) to its
    worker being free, over the requests of ``select``."""
    out = {}
    rec = result.records
    for s in stages:
        end = rec[f"{s}_start_s"].to_numpy() + rec[f"{s}_service_ms"].to_numpy() / 1000.0
        gap = (np.asarray(result.release_s[s], dtype=np.float64) - end)[select] * 1000.0
        gap = gap[np.isfinite(gap)]
        out[s] = max(float(np.median(gap)), 0.0) if gap.size else 0.0
    return out


def simulate_pooled(
    arrivals: np.ndarray,
    stages: Sequence[LiveStage],
    model: SimModel,
    *,
    seed: int,
    warmup_s: float,
    replications: int,
    select: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Latency samples of ``replications`` simulations of the same arrivals (pooled), and
    the first replication's records. With ``select`` (a boolean per arrival) only those
    requests' latencies are sampled; every arrival is simulated.

    With ``model.ingress_ms``, each request reaches the first queue after its own draw of
    the ingress delay (so requests may overtake one another there), and that delay counts in
    its end-to-end latency, as it does in the load test. With ``model.drift``, each
    replication runs on its own block-bootstrapped path of the machine's speed.
    """
    names = [s.name for s in stages]
    specs = sim_specs(stages, model.services, model.handoff_ms, model.contention, model.after_ms)
    delays = np.random.default_rng([seed, 7])
    pooled: dict[str, list[np.ndarray]] = {}
    first = None
    clocks = model.stalls if model.stalls is not None else model.warp
    for r in range(replications):
        # With stalls or a warp the simulator runs on the server's own clock.
        clock = None if clocks is None else clocks.path(float(arrivals[-1]) + 1.0, delays)
        base = arrivals if clock is None else clock.to_server(arrivals)
        times, extra_ms, scheduled, picked = base, 0.0, arrivals, select
        if model.ingress_ms is not None:
            d = block_draws(model.ingress_ms, arrivals.size, delays, INGRESS_BLOCK) / 1000.0
            order = np.argsort(base + d, kind="stable")
            times, extra_ms, scheduled = (base + d)[order], d[order] * 1000.0, arrivals[order]
            picked = None if select is None else select[order]
        run_specs = specs
        if model.drift is not None:
            # One path for every stage: they share the machine whose speed drifts.
            duration = float(times[-1]) + 1.0
            path = (
                model.drift.replay_path(duration)
                if model.drift_replay
                else bootstrap_path(
                    model.drift.factors, model.drift.window_s, duration, model.drift_block, delays
                )
            )
            run_specs = [dataclasses.replace(s, slowdown=path) for s in specs]
        result = simulate(times, run_specs, seed=seed + r, warmup_s=warmup_s)
        assert result.records is not None
        if clock is not None:
            records = unwarp_records(result.records, clock, names, scheduled)
        else:
            records = result.records.assign(arrival_s=scheduled)
            records["e2e_ms"] = records["e2e_ms"] + extra_ms
        first = records if first is None else first
        for name, values in latencies_ms(records, names, warmup_s, picked).items():
            pooled.setdefault(name, []).append(values)
    assert first is not None
    return {k: np.concatenate(v) for k, v in pooled.items()}, first


def model_inputs(model: SimModel, stage: str) -> dict[str, Any]:
    """What the calibrated model measured for one stage (or, end to end, the ingress)."""
    if stage == END_TO_END:
        out: dict[str, Any] = {}
        if model.ingress_ms is not None:
            p50, p99 = np.percentile(model.ingress_ms, [50, 99])
            out |= {"ingress_p50_ms": float(p50), "ingress_p99_ms": float(p99)}
        if model.drift is not None:
            out["drift"] = model.drift.describe()
        if model.stalls is not None:
            out["stalls"] = model.stalls.describe()
        if model.warp is not None:
            out["warp"] = model.warp.describe()
        return out
    service = model.services[stage]
    out = {
        "contention": model.contention.get(stage, 0.0),
        "handoff_ms": model.handoff_ms.get(stage, 0.0),
        "after_ms": model.after_ms.get(stage, 0.0),
    }
    if isinstance(service, WarmColdServiceTime):
        out |= {
            "warm_b1_mean_ms": 1000 * service.warm.mean_s(1),
            "cold_b1_mean_ms": 1000 * service.cold.mean_s(1),
        }
    return out


__all__ = [
    "INGRESS_BLOCK",
    "SimModel",
    "after_ms",
    "calibrated_model",
    "handoff_ms",
    "model_inputs",
    "profiled_models",
    "sim_specs",
    "simulate_pooled",
]

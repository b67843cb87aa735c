"""The simulator: requests flow through the stages in order, each stage a replica pool.

``simulate(arrivals, stages)`` replays the given arrival times through
:class:`~recsys.sim.server.StageServer` pools (SimPy, callbacks only) and returns a
:class:`~recsys.sim.results.SimResult`. A request pays ``network_ms`` on its way into each
stage, waits, is served in a batch, and moves on with its batch; its end-to-end latency is the
time from arrival to the end of its last stage's batch.

Randomness: stage ``i`` draws service times from its own stream
``SeedSequence(seed).spawn(n_stages)[i]``, so changing one stage does not reshuffle the
others (common random numbers across what-if configurations).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from simpy import Environment, Event, Timeout
from tqdm.auto import tqdm

from recsys.errors import ConfigError
from recsys.sim.autoscale import Autoscaler, AutoscalerSpec
from recsys.sim.contention import SharedMachine, contended
from recsys.sim.hardware import Hardware
from recsys.sim.records import OK, RequestLog
from recsys.sim.results import RunInfo, SimResult, summarize
from recsys.sim.server import StageServer
from recsys.sim.service import BatchSampler, ServiceTimeModel, describe_model
from recsys.sim.slowdown import Slowdown

__all__ = [
    "AutoscalerSpec",
    "StageSpec",
    "check_arrivals",
    "simulate",
    "simulate_simpy",
    "stage_streams",
]


@dataclass
class StageSpec:
    """One stage's server pool.

    ``service`` is the service-time model *on this stage's hardware* (build it with
    ``hardware.scale(profiled_model)``); ``hardware`` itself is carried for reporting and
    pricing only, so a model is never scaled twice. ``queue_capacity`` (requests
    waiting, not in service) and ``timeout_ms`` (longest wait in this stage's queue) are
    unbounded when None. ``network_ms`` is paid on the way into this stage.
    ``contention`` > 0 places the stage on one machine with every other such stage: while
    ``k`` other batches are in service there, its batch progresses at ``1 / (1 + contention
    k)`` of its speed (:mod:`recsys.sim.contention`; SimPy engine only).
    ``slowdown`` scales each batch's service-time draw by the machine's speed factor at the
    batch's start (:mod:`recsys.sim.slowdown`; SimPy and reference engines only).
    ``after_ms`` > 0: a batch's requests leave that long before its worker is free (the
    service draw is the whole time the batch holds its worker; a live server hands its
    results on, then does its bookkeeping); at most the whole draw (SimPy engine only).
    """

    name: str
    service: ServiceTimeModel
    replicas: int = 1
    workers_per_replica: int = 1
    max_batch: int = 1
    max_wait_ms: float = 0.0
    queue_capacity: int | None = None
    timeout_ms: float | None = None
    network_ms: float = 0.0
    hardware: Hardware | None = None
    contention: float = 0.0
    slowdown: Slowdown | None = None
    after_ms: float = 0.0

    def __post_init__(self) -> None:
        where = f"stage {self.name!r}"
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"{where}: name must be a non-empty identifier (letters, digits, _)")
        if not (hasattr(self.service, "sample") and hasattr(self.service, "mean_s")):
            raise ConfigError(f"{where}: service must have sample() and mean_s()")
        for field, low in (("replicas", 1), ("workers_per_replica", 1), ("max_batch", 1)):
            value = getattr(self, field)
            if int(value) != value or value < low:
                raise ConfigError(f"{where}: {field} must be an integer >= {low}, got {value}")
        if self.queue_capacity is not None and (
            int(self.queue_capacity) != self.queue_capacity or self.queue_capacity < 0
        ):
            raise ConfigError(f"{where}: queue_capacity must be an integer >= 0 or null")
        for field in ("max_wait_ms", "network_ms", "contention", "after_ms"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{where}: {field} must be >= 0, got {value}")
        if self.timeout_ms is not None and not (
            math.isfinite(self.timeout_ms) and self.timeout_ms > 0
        ):
            raise ConfigError(f"{where}: timeout_ms must be > 0 or null, got {self.timeout_ms}")
        if self.slowdown is not None and not isinstance(self.slowdown, Slowdown):
            raise ConfigError(f"{where}: slowdown must be a Slowdown or null")

    @property
    def workers(self) -> int:
        return self.replicas * self.workers_per_replica

    def describe(self) -> dict[str, Any]:
        """Every setting and assumption of this stage, for the report."""
        return {
            "name": self.name,
            "service": describe_model(self.service),
            "replicas": self.replicas,
            "workers_per_replica": self.workers_per_replica,
            "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait_ms,
            "queue_capacity": self.queue_capacity,
            "timeout_ms": self.timeout_ms,
            "network_ms": self.network_ms,
            "contention": self.contention,
            "after_ms": self.after_ms,
            "slowdown": self.slowdown.describe() if self.slowdown is not None else None,
            "hardware": self.hardware.to_dict() if self.hardware is not None else None,
        }


def check_arrivals(arrivals: np.ndarray | Sequence[float]) -> np.ndarray:
    """Arrivals as a sorted, finite, non-negative float64 array (ConfigError otherwise)."""
    times = np.ascontiguousarray(arrivals, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise ConfigError("arrivals must be a non-empty 1-d array of times in seconds")
    # Sorted (NaN fails every comparison) with finite ends means all finite: one boolean
    # temporary, not a float copy, for arrays of tens of millions of arrivals.
    ordered = bool((times[1:] >= times[:-1]).all())
    if not (ordered and times[0] >= 0.0 and np.isfinite(times[-1])):
        raise ConfigError("arrivals must be finite, non-negative and sorted")
    return times


def _check_stages(stages: Sequence[StageSpec]) -> None:
    if not stages:
        raise ConfigError("a pipeline needs at least one stage")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"stage names must be unique, got {names}")


def stage_streams(seed: int, n_stages: int) -> list[np.random.Generator]:
    """Independent random streams, one per stage (see module docstring)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_stages)]


class _Source:
    """Feeds arrivals into the first stage: one event per distinct arrival time."""

    def __init__(
        self,
        env: Environment,
        times: np.ndarray,
        deliver: Callable[[list[int]], None],
        bar: tqdm | None,
    ) -> None:
        self.env = env
        self.times = times.tolist()
        self.deliver = deliver
        self.bar = bar
        self.i = 0
        Timeout(env, self.times[0]).callbacks.append(self._fire)

    def _fire(self, event: Event) -> None:
        times, i = self.times, self.i
        n = len(times)
        j = i + 1
        if j < n and times[j] == times[i]:  # several requests at this instant (a replay)
            while j < n and times[j] == times[i]:
                j += 1
            self.deliver(list(range(i, j)))
        else:
            self.deliver([i])
        self.i = j
        if self.bar is not None and (j >> 13) != (i >> 13):
            self.bar.update(j - self.bar.n)
        if j < n:
            env = self.env
            Timeout(env, max(times[j] - env.now, 0.0)).callbacks.append(self._fire)


def _wire(env: Environment, servers: list[StageServer], log: RequestLog) -> None:
    """Connect each stage's exit to the next stage (through its network delay) or to the end."""

    def finish(batch: list[int]) -> None:
        now = env.now
        for rid in batch:
            log.outcome[rid] = OK
            log.done_s[rid] = now

    for i, server in enumerate(servers):
        if i + 1 == len(servers):
            server.on_exit = finish
            continue
        nxt = servers[i + 1]
        delay = nxt.spec.network_ms / 1000.0
        if delay == 0.0:
            server.on_exit = nxt.arrive_many
        else:

            def hop(batch: list[int], nxt: StageServer = nxt, delay: float = delay) -> None:
                Timeout(env, delay, batch).callbacks.append(lambda e: nxt.arrive_many(e.value))

            server.on_exit = hop


def simulate(
    arrivals: np.ndarray | Sequence[float],
    stages: Sequence[StageSpec],
    seed: int = 0,
    warmup_s: float = 0.0,
    record: bool = True,
    *,
    autoscaler: AutoscalerSpec | None = None,
    progress: bool = False,
    timeseries_bin_s: float = 60.0,
    n_batches: int = 20,
    confidence: float = 0.95,
    engine: str = "auto",
) -> SimResult:
    """Run ``arrivals`` (seconds) through ``stages`` in order and summarise the run.

    Statistics cover requests arriving at or after ``warmup_s``; utilisation covers
    ``[warmup_s, last arrival]``. Percentile intervals are batch means over ``n_batches``
    consecutive groups of requests (see :mod:`recsys.metrics_latency`). ``record=False``
    keeps no per-request table: statistics are then streamed (:mod:`recsys.sim.stream`:
    percentiles within 0.2%, memory bounded on the compiled engine). ``engine`` picks the
    implementation (:mod:`recsys.sim.select`; ``auto``: compiled unless autoscaling); all
    give the same records for the same arrivals and seed.
    """
    from recsys.sim.select import choose_engine

    kwargs = {
        "seed": seed,
        "warmup_s": warmup_s,
        "record": record,
        "autoscaler": autoscaler,
        "progress": progress,
        "timeseries_bin_s": timeseries_bin_s,
        "n_batches": n_batches,
        "confidence": confidence,
    }
    chosen = choose_engine(stages, autoscaler, engine)
    if chosen == "fast":
        from recsys.sim.fast import simulate_fast

        return simulate_fast(arrivals, stages, **kwargs)  # type: ignore[arg-type]
    if chosen == "naive":
        from recsys.sim.naive import simulate_naive

        return simulate_naive(arrivals, stages, **kwargs)  # type: ignore[arg-type]
    return simulate_simpy(arrivals, stages, **kwargs)  # type: ignore[arg-type]


def simulate_simpy(
    arrivals: np.ndarray | Sequence[float],
    stages: Sequence[StageSpec],
    seed: int = 0,
    warmup_s: float = 0.0,
    record: bool = True,
    *,
    autoscaler: AutoscalerSpec | None = None,
    progress: bool = False,
    timeseries_bin_s: float = 60.0,
    n_batches: int = 20,
    confidence: float = 0.95,
) -> SimResult:
    """:func:`simulate` on the SimPy callback engine (the only one with an autoscaler)."""
    times = check_arrivals(arrivals)
    _check_stages(stages)
    if not 0.0 <= warmup_s <= times[-1]:
        raise ConfigError(
            f"warmup_s={warmup_s} must be >= 0 and before the last arrival ({times[-1]:.3f} s)"
        )
    env = Environment()
    log = RequestLog(times, len(stages))
    t_end = float(times[-1])
    # A fixed pool adds each batch's busy time within the window as it starts; the
    # autoscaler needs the running integrals instead (snapshots at warmup_s and t_end).
    fixed = autoscaler is None
    machine = SharedMachine(env) if contended(stages) else None
    servers = [
        StageServer(
            env,
            spec,
            i,
            BatchSampler(spec.service, rng),
            log,
            (warmup_s, t_end) if fixed else None,
            machine,
        )
        for i, (spec, rng) in enumerate(zip(stages, stage_streams(seed, len(stages)), strict=True))
    ]
    _wire(env, servers, log)
    bar = tqdm(total=times.size, desc="simulate", unit="req", disable=not progress, leave=False)
    _Source(
        env,
        times + stages[0].network_ms / 1000.0,
        servers[0].arrive_many,
        bar if progress else None,
    )
    window: dict[str, list[tuple[float, float]]] = {"start": [], "end": []}

    def snapshot(key: str) -> Callable[[Event], None]:
        return lambda e: window[key].extend(s.account() for s in servers)

    if not fixed:
        Timeout(env, warmup_s).callbacks.append(snapshot("start"))
        Timeout(env, t_end).callbacks.append(snapshot("end"))
    scaler = Autoscaler(env, autoscaler, servers, t_end) if autoscaler is not None else None
    env.run()
    bar.close()
    if fixed:
        span = t_end - warmup_s
        window["start"] = [(0.0, 0.0)] * len(servers)
        window["end"] = [(s.busy_window, s.workers * span) for s in servers]
    info = RunInfo(
        seed=seed,
        warmup_s=warmup_s,
        end_s=t_end,
        sim_end_s=max(float(env.now), t_end),
        n_batches=n_batches,
        confidence=confidence,
        timeseries_bin_s=timeseries_bin_s,
        engine="simpy-callbacks",
    )
    replica_logs = {s.index: [(0.0, s.spec.replicas, 0)] for s in servers}
    if scaler is not None:
        replica_logs |= scaler.replica_log
    return summarize(log, stages, info, window=window, replica_logs=replica_logs, record=record)

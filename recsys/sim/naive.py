"""The same model as :mod:`recsys.sim.engine`, written the textbook SimPy way.

One process per request and one per worker, a ``yield`` for every wait. It is slower (many
more events and generator switches) but easy to read, so it serves as a reference: for the
same arrivals and seed it gives the same records as the callback engine (up to the order of
events that happen at exactly the same time), and a later benchmark compares their speed.
No autoscaler here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import simpy

from recsys.errors import ConfigError
from recsys.sim.engine import StageSpec, _check_stages, check_arrivals, stage_streams
from recsys.sim.records import OK, SHED, TIMEOUT, RequestLog
from recsys.sim.results import RunInfo, SimResult, summarize
from recsys.sim.server import TIME_EPS_S
from recsys.sim.service import BatchSampler


class _NaiveStage:
    """Queue of ``(request id, done event)`` plus worker processes that batch from it."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: StageSpec,
        index: int,
        sampler: BatchSampler,
        log: RequestLog,
    ) -> None:
        self.env, self.spec, self.index, self.sample, self.log = env, spec, index, sampler, log
        self.queue: list[tuple[int, simpy.Event]] = []
        self.wake = env.event()
        self.timers: set[float] = set()
        self.busy = 0
        self.busy_area = 0.0
        self._last_t = 0.0
        for _ in range(spec.workers):
            env.process(self.worker())

    def account(self) -> tuple[float, float]:
        now = self.env.now
        self.busy_area += self.busy * (now - self._last_t)
        self._last_t = now
        return self.busy_area, self.spec.workers * now

    def notify(self) -> None:
        """Wake every idle worker (they re-check the queue)."""
        if not self.wake.triggered:
            self.wake.succeed()
        self.wake = self.env.event()

    def ring_at(self, due: float) -> None:
        """Wake the workers at ``due`` (a plain event, not a condition, so idle workers
        resume in the same order as they would for an arrival)."""
        if due not in self.timers:
            self.timers.add(due)
            self.env.timeout(due - self.env.now).callbacks.append(lambda e: self._ring(due))

    def _ring(self, due: float) -> None:
        self.timers.discard(due)
        self.notify()

    def worker(self) -> Generator[simpy.Event, Any, None]:
        env, spec, queue = self.env, self.spec, self.queue
        max_wait_s = spec.max_wait_ms / 1000.0
        warm = False  # a worker's first batch, and any after waiting, starts cold
        while True:
            if not queue:
                warm = False
                yield self.wake
                continue
            due = self.log.enqueue_s[self.index][queue[0][0]] + max_wait_s
            if len(queue) < spec.max_batch and max_wait_s > 0 and due - env.now > TIME_EPS_S:
                self.ring_at(due)
                warm = False
                yield self.wake
                continue
            size = min(len(queue), spec.max_batch)
            batch, queue[:size] = queue[:size], []
            service = self.sample(size, warm)
            if spec.slowdown is not None:
                service *= spec.slowdown.factor(env.now)
            for rid, _ in batch:
                self.log.start_s[self.index][rid] = env.now
                self.log.service_s[self.index][rid] = service
                self.log.batch_size[self.index][rid] = size
            self.account()
            self.busy += 1
            yield env.timeout(service)
            self.account()
            self.busy -= 1
            for _, done in batch:
                done.succeed()
            warm = True


def _request(
    env: simpy.Environment, rid: int, stages: list[_NaiveStage], log: RequestLog
) -> Generator[simpy.Event, Any, None]:
    for stage in stages:
        spec = stage.spec
        if spec.network_ms:
            yield env.timeout(spec.network_ms / 1000.0)
        s = stage.index
        log.queue_len[s][rid] = len(stage.queue)
        done = env.event()
        log.enqueue_s[s][rid] = env.now
        stage.queue.append((rid, done))
        stage.notify()
        if spec.queue_capacity is not None and len(stage.queue) > spec.queue_capacity:
            yield env.timeout(0)  # let woken workers take what they can first
            if (rid, done) in stage.queue and stage.queue.index((rid, done)) >= spec.queue_capacity:
                stage.queue.remove((rid, done))
                log.enqueue_s[s][rid] = float("nan")
                log.drop(rid, SHED, s, env.now)
                return
        if spec.timeout_ms is None:
            yield done
            continue
        limit = env.timeout(spec.timeout_ms / 1000.0)
        yield done | limit
        if not done.triggered:
            if log.start_s[s][rid] != log.start_s[s][rid]:  # NaN: still waiting, give up
                stage.queue.remove((rid, done))
                log.drop(rid, TIMEOUT, s, env.now)
                return
            yield done  # already in service: a batch is never cancelled
    log.outcome[rid] = OK
    log.done_s[rid] = env.now


def _source(
    env: simpy.Environment, times: np.ndarray, stages: list[_NaiveStage], log: RequestLog
) -> Generator[simpy.Event, Any, None]:
    for rid, t in enumerate(times.tolist()):
        if t > env.now:
            yield env.timeout(t - env.now)
        env.process(_request(env, rid, stages, log))


def simulate_naive(
    arrivals: np.ndarray | Sequence[float],
    stages: Sequence[StageSpec],
    seed: int = 0,
    warmup_s: float = 0.0,
    record: bool = True,
    *,
    autoscaler: object | None = None,
    progress: bool = False,  # accepted for a common signature; no progress bar here
    timeseries_bin_s: float = 60.0,
    n_batches: int = 20,
    confidence: float = 0.95,
) -> SimResult:
    """Process-per-request twin of :func:`recsys.sim.engine.simulate` (same arguments)."""
    if autoscaler is not None:
        raise ConfigError("the naive engine has no autoscaler; use recsys.sim.engine.simulate")
    times = check_arrivals(arrivals)
    _check_stages(stages)
    if not 0.0 <= warmup_s <= times[-1]:
        raise ConfigError(f"warmup_s={warmup_s} must be >= 0 and before the last arrival")
    env = simpy.Environment()
    log = RequestLog(times, len(stages))
    pools = [
        _NaiveStage(env, spec, i, BatchSampler(spec.service, rng), log)
        for i, (spec, rng) in enumerate(zip(stages, stage_streams(seed, len(stages)), strict=True))
    ]
    env.process(_source(env, times, pools, log))
    window: dict[str, list[tuple[float, float]]] = {"start": [], "end": []}

    def snapshot(key: str) -> Callable[[simpy.Event], None]:
        return lambda e: window[key].extend(p.account() for p in pools)

    env.timeout(warmup_s).callbacks.append(snapshot("start"))
    env.timeout(float(times[-1])).callbacks.append(snapshot("end"))
    env.run()
    info = RunInfo(
        seed=seed,
        warmup_s=warmup_s,
        end_s=float(times[-1]),
        sim_end_s=float(env.now),
        n_batches=n_batches,
        confidence=confidence,
        timeseries_bin_s=timeseries_bin_s,
        engine="simpy-naive",
    )
    replica_logs = {p.index: [(0.0, p.spec.replicas, 0)] for p in pools}
    return summarize(log, stages, info, window=window, replica_logs=replica_logs, record=record)

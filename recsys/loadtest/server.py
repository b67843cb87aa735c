"""An in-process server for the real stages: per stage one FIFO queue and a pool of threads.

It follows the simulator's semantics (:mod:`recsys.sim.server`) so that a measurement and a
simulation of the same settings differ only where the machine differs from the model:

- **Pool**: ``replicas x workers_per_replica`` worker threads share one FIFO queue.
- **Dynamic batching**: a free worker takes up to ``max_batch`` requests from the head of the
  queue as soon as ``max_batch`` are waiting, or once the oldest waiting request has waited
  ``max_wait_ms``; with ``max_wait_ms = 0`` it takes whatever is queued at once.
- **Bounded queue**: a request that would leave more than ``queue_capacity`` requests waiting
  (after the idle workers have taken what they can start now) is shed on arrival.
- **Timeout**: a request still queued ``timeout_ms`` after joining leaves with outcome
  ``timeout`` (checked whenever a worker looks at the queue; recorded at its deadline).

A stage is a :class:`LiveStage`: a name, its serving settings and ``run(payloads) ->
outputs`` (one output per request; the output becomes the next stage's payload). Times are
``time.perf_counter`` seconds from the start of the run and go into the simulator's
:class:`~recsys.sim.records.RequestLog`, so both produce the same per-request records.

What the simulator has no field for is also kept, per request (of its batch):

- ``ready_s``: the moment the batch *could* have started (its worker free and the batching
  rule met). A real worker starts a little later, because a sleeping thread must be woken
  and get the GIL; ``start - ready`` is that dispatch delay.
- ``release_s``: when the worker was free again (results recorded and handed to the next
  stage), so ``release - ready`` is how long the batch really held its worker.
- ``warm``: whether the batch was ready when its worker came back from the previous one
  (it went straight on); else the worker sat idle and was woken for it (a cold start).
- ``cpu_s``: the CPU time the worker thread used on the batch; a batch whose wall time is
  well above it spent the difference waiting for the GIL or for a core.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from recsys.errors import ConfigError
from recsys.sim.records import OK, SHED, TIMEOUT, RequestLog

# A batch timer that fires this close to its due time counts as due (Condition.wait wakes
# a little early or late; waiting again for a few microseconds would only add jitter).
DUE_EPS_S = 20e-6


class StageRunner(Protocol):
    """The real work of a stage: one output per payload, in order."""

    def __call__(self, payloads: list[Any]) -> Sequence[Any]: ...


@dataclass(frozen=True)
class LiveStage:
    """One stage as the load test serves it (the serving fields mirror ``StageSpec``)."""

    name: str
    run: StageRunner
    replicas: int = 1
    workers_per_replica: int = 1
    max_batch: int = 1
    max_wait_ms: float = 0.0
    queue_capacity: int | None = None
    timeout_ms: float | None = None

    def __post_init__(self) -> None:
        where = f"stage {self.name!r}"
        for name in ("replicas", "workers_per_replica", "max_batch"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ConfigError(f"{where}: {name} must be an integer >= 1, got {value}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"{where}: max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.queue_capacity is not None and self.queue_capacity < 0:
            raise ConfigError(f"{where}: queue_capacity must be >= 0 or null")
        if self.timeout_ms is not None and not self.timeout_ms > 0:
            raise ConfigError(f"{where}: timeout_ms must be > 0 or null")

    @property
    def workers(self) -> int:
        return self.replicas * self.workers_per_replica


class Clock:
    """Seconds since ``start()`` on ``time.perf_counter`` (the same clock for every thread);
    minus infinity before ``start()``, so a worker that was idle since before the run counts
    as free from the beginning."""

    def __init__(self) -> None:
        self.t0 = math.inf

    def start(self, delay_s: float = 0.0) -> None:
        """Time zero is ``delay_s`` from now (a generator in another process needs a moment
        to learn it before the first arrival)."""
        self.t0 = time.perf_counter() + delay_s

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


class StagePool:
    """Queue, batcher and worker threads of one stage; hands finished batches to ``on_exit``."""

    def __init__(
        self,
        stage: LiveStage,
        index: int,
        log: RequestLog,
        payloads: list[Any],
        clock: Clock,
        on_exit: Callable[[list[int], float], None],
        on_drop: Callable[[int], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.stage = stage
        self.index = index
        self.log = log
        self.payloads = payloads
        self.clock = clock
        self.on_exit = on_exit
        self.on_drop = on_drop
        self.on_error = on_error
        self.queue: deque[int] = deque()
        self.cond = threading.Condition()
        self.max_batch = stage.max_batch
        self.max_wait_s = stage.max_wait_ms / 1000.0
        self.timeout_s = None if stage.timeout_ms is None else stage.timeout_ms / 1000.0
        self.ready_s = array("d", [float("nan")]) * log.n
        self.cpu_s = array("d", [float("nan")]) * log.n
        self.release_s = array("d", [float("nan")]) * log.n
        self.warm = array("b", [0]) * log.n
        self.idle = 0
        self.closed = False
        self.threads = [
            threading.Thread(target=self._work, name=f"{stage.name}-{w}", daemon=True)
            for w in range(stage.workers)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self, abandon: bool = False) -> None:
        """Let the workers exit once the queue is empty (at once with ``abandon``)."""
        with self.cond:
            self.closed = True
            if abandon:
                self.queue.clear()
            self.cond.notify_all()

    def join(self, timeout_s: float | None = None) -> None:
        for thread in self.threads:
            thread.join(timeout_s)

    # -- arrivals ---------------------------------------------------------------------------
    def submit(self, rids: Sequence[int]) -> None:
        """Requests ``rids`` (payloads already stored) join this stage's queue now."""
        log, s = self.log, self.index
        enq, queue_len = log.enqueue_s[s], log.queue_len[s]
        with self.cond:
            now = self.clock()
            queue = self.queue
            for rid in rids:
                queue_len[rid] = len(queue)
                enq[rid] = now
                queue.append(rid)
            if self.stage.queue_capacity is not None:
                self._shed(now)
            self.cond.notify(len(rids))

    def _shed(self, now: float) -> None:
        """Drop the newest requests beyond capacity, after what idle workers can start now."""
        queue = self.queue
        ready = len(queue) >= self.max_batch or self.max_wait_s == 0.0
        starting = min(len(queue), self.idle * self.max_batch) if ready else 0
        assert self.stage.queue_capacity is not None
        while len(queue) - starting > self.stage.queue_capacity:
            rid = queue.pop()
            self.log.enqueue_s[self.index][rid] = float("nan")
            self.log.drop(rid, SHED, self.index, now)
            self.on_drop(rid)

    def _expire(self, now: float) -> None:
        queue, enq, limit = self.queue, self.log.enqueue_s[self.index], self.timeout_s
        assert limit is not None
        while queue and enq[queue[0]] + limit < now:
            rid = queue.popleft()
            self.log.drop(rid, TIMEOUT, self.index, enq[rid] + limit)
            self.on_drop(rid)

    # -- workers ----------------------------------------------------------------------------
    def _take(self) -> tuple[list[int], float] | None:
        """Block until a batch is ready (the simulator's rule); None once closed and empty."""
        queue, enq = self.queue, self.log.enqueue_s[self.index]
        with self.cond:
            free = self.clock()
            while True:
                now = self.clock()
                if self.timeout_s is not None:
                    self._expire(now)
                if not queue:
                    if self.closed:
                        return None
                    self._wait(None)
                    continue
                if len(queue) >= self.max_batch or self.max_wait_s == 0.0:
                    break
                due = enq[queue[0]] + self.max_wait_s
                if due - now <= DUE_EPS_S:
                    break
                self._wait(due - now)
            trigger = self._trigger()
            # Warm: the batch was ready when the worker came back from its last one (it goes
            # straight on); cold: the worker sat idle and is woken for it.
            ready, warm = max(free, trigger), int(trigger <= free)
            size = min(len(queue), self.max_batch)
            batch = [queue.popleft() for _ in range(size)]
            for rid in batch:
                self.ready_s[rid] = ready
                self.warm[rid] = warm
            if queue:
                self.cond.notify()  # another idle worker may take the rest
            return batch, self.clock()

    def _trigger(self) -> float:
        """When the batching rule was met for the batch at the head of the queue."""
        queue, enq = self.queue, self.log.enqueue_s[self.index]
        head = enq[queue[0]]
        if self.max_wait_s == 0.0:
            return head
        due = head + self.max_wait_s
        if len(queue) >= self.max_batch:
            return min(enq[queue[self.max_batch - 1]], due)
        return due

    def _wait(self, timeout_s: float | None) -> None:
        self.idle += 1
        try:
            self.cond.wait(timeout_s)
        finally:
            self.idle -= 1

    def _work(self) -> None:
        log, s, payloads, run = self.log, self.index, self.payloads, self.stage.run
        start_s, service_s, batch_size = log.start_s[s], log.service_s[s], log.batch_size[s]
        cpu_s, release_s, thread_time = self.cpu_s, self.release_s, time.thread_time
        try:
            while (taken := self._take()) is not None:
                batch, t_start = taken
                cpu0 = thread_time()
                outputs = run([payloads[rid] for rid in batch])
                t_end = self.clock()
                cpu = thread_time() - cpu0
                if len(outputs) != len(batch):
                    raise RuntimeError(
                        f"stage {self.stage.name!r} returned {len(outputs)} outputs "
                        f"for a batch of {len(batch)}"
                    )
                size = len(batch)
                for rid, out in zip(batch, outputs, strict=True):
                    start_s[rid] = t_start
                    service_s[rid] = t_end - t_start
                    batch_size[rid] = size
                    cpu_s[rid] = cpu
                    payloads[rid] = out
                self.on_exit(batch, t_end)
                t_free = self.clock()
                for rid in batch:
                    release_s[rid] = t_free
        except BaseException as exc:  # a failing stage ends the run; the caller re-raises
            self.on_error(exc)


class LiveServer:
    """The stages in order: a finished batch of stage ``i`` joins stage ``i + 1`` at once."""

    def __init__(self, stages: Sequence[LiveStage], log: RequestLog, payloads: list[Any]) -> None:
        if not stages:
            raise ConfigError("a pipeline needs at least one stage")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stage names must be unique, got {names}")
        self.log = log
        self.clock = Clock()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._left = log.n
        self.pools: list[StagePool] = []
        for i, stage in enumerate(stages):
            self.pools.append(
                StagePool(
                    stage,
                    i,
                    log,
                    payloads,
                    self.clock,
                    on_exit=self._finish if i == len(stages) - 1 else self._hand_to(i + 1),
                    on_drop=lambda rid: self._count(1),
                    on_error=self._fail,
                )
            )

    def _hand_to(self, nxt: int) -> Callable[[list[int], float], None]:
        def hand(batch: list[int], t_end: float) -> None:
            self.pools[nxt].submit(batch)

        return hand

    def _finish(self, batch: list[int], t_end: float) -> None:
        log = self.log
        for rid in batch:
            log.outcome[rid] = OK
            log.done_s[rid] = t_end
        self._count(len(batch))

    def _count(self, n: int) -> None:
        with self._lock:
            self._left -= n
            if self._left <= 0:
                self.finished.set()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
        self.finished.set()

    @property
    def outstanding(self) -> int:
        """Requests neither finished nor dropped yet."""
        return self._left

    def start(self, timeout_s: float = 10.0, delay_s: float = 0.0) -> None:
        """Start the workers, wait until every one is idle at its queue, then start the clock
        (time zero ``delay_s`` from then)."""
        for pool in self.pools:
            pool.start()
        deadline = time.perf_counter() + timeout_s
        while any(pool.idle < pool.stage.workers for pool in self.pools):
            if time.perf_counter() > deadline:
                raise RuntimeError("load-test workers did not start")
            time.sleep(0.001)
        self.clock.start(delay_s)

    def submit(self, rids: Sequence[int]) -> None:
        self.pools[0].submit(rids)

    def stop(self, abandon: bool = False, join_timeout_s: float = 5.0) -> None:
        for pool in self.pools:
            pool.close(abandon)
        for pool in self.pools:
            pool.join(join_timeout_s)

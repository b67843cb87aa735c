"""One stage of the pipeline as a SimPy server: a FIFO queue feeding a pool of workers.

Written with callbacks on SimPy events (no process per request): a request is an integer id,
the queue is a ``deque`` of ids, and each batch in service is one ``Timeout`` event.

Semantics (the same in :mod:`recsys.sim.naive`):

- **Pool**: ``replicas x workers_per_replica`` identical workers share one FIFO queue (an ideal
  load balancer). Each worker serves one batch at a time.
- **Dynamic batching**: a free worker takes up to ``max_batch`` requests from the head of the
  queue as soon as ``max_batch`` are waiting, or once the oldest waiting request has waited
  ``max_wait_ms``; with ``max_wait_ms = 0`` it takes whatever is queued at once.
- **Service**: a batch of ``b`` takes one draw of the stage's service model for ``b``.
- **Bounded queue**: a request that would leave more than ``queue_capacity`` requests waiting
  (after any free worker has taken what it can) is shed on arrival; ``queue_capacity = 0``
  is a loss system (served at once or shed). Requests waiting for a batch to fill count.
- **Timeout**: a request still waiting ``timeout_ms`` after joining the queue leaves with
  outcome ``timeout`` at exactly that moment (waiting exactly ``timeout_ms`` is still served).
  Requests in service are never cancelled.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from simpy import Environment, Event, Timeout

from recsys.sim.contention import SharedMachine
from recsys.sim.records import SHED, TIMEOUT, RequestLog
from recsys.sim.service import BatchSampler

if TYPE_CHECKING:
    from recsys.sim.engine import StageSpec

# A timer due at t fires at t +- a few ulps; treat anything this close as due.
TIME_EPS_S = 1e-9

Exit = Callable[[list[int]], None]


class StageServer:
    """Queue, batcher and workers of one stage; hands finished batches to ``on_exit``."""

    def __init__(
        self,
        env: Environment,
        spec: StageSpec,
        index: int,
        sampler: BatchSampler,
        log: RequestLog,
        window: tuple[float, float] | None = None,
        machine: SharedMachine | None = None,
    ) -> None:
        self.env = env
        # Co-located stages (StageSpec.contention > 0) run their batches on one shared machine.
        self.machine = machine if spec.contention > 0 else None
        self.spec = spec
        self.index = index
        self.sample = sampler
        self.slowdown = spec.slowdown
        self.log = log
        self.on_exit: Exit = lambda batch: None
        self.queue: deque[int] = deque()
        self.max_batch = spec.max_batch
        self.max_wait_s = spec.max_wait_ms / 1000.0
        self.capacity = spec.queue_capacity
        self.timeout_s = None if spec.timeout_ms is None else spec.timeout_ms / 1000.0
        self.after_s = spec.after_ms / 1000.0
        self.replicas = spec.replicas
        self.workers = spec.replicas * spec.workers_per_replica
        self.busy = 0
        self.retiring = 0
        # Set while a worker that just finished looks for its next batch: the batch it takes
        # at once starts warm (state-dependent service models tell warm from cold).
        self._freed = False
        self._timer_at: float | None = None
        self._enq = log.enqueue_s[index]
        self._qlen = log.queue_len[index]
        self._start_s, self._svc = log.start_s[index], log.service_s[index]
        self._bsz = log.batch_size[index]
        # Time integrals of busy workers and of workers present, for utilisation (and the
        # autoscaler). With a fixed pool and a measurement ``window`` it is cheaper to add
        # each batch's overlap with the window when it starts (``busy_window``).
        self.window = window
        self.busy_window = 0.0
        self.busy_area = 0.0
        self.worker_area = 0.0
        self._last_t = 0.0

    # -- accounting -------------------------------------------------------------------------
    def account(self) -> tuple[float, float]:
        """Bring the busy/worker time integrals up to now and return them."""
        now = self.env.now
        dt = now - self._last_t
        if dt:
            self.busy_area += self.busy * dt
            self.worker_area += self.workers * dt
            self._last_t = now
        return self.busy_area, self.worker_area

    # -- arrivals ---------------------------------------------------------------------------
    def arrive_many(self, batch: list[int]) -> None:
        """Requests ``batch`` reach this stage now (together, e.g. a batch from upstream)."""
        now = self.env.now
        queue = self.queue
        if self.timeout_s is not None:
            self._expire(now)
        queue_len, enq = self._qlen, self._enq
        for rid in batch:
            queue_len[rid] = len(queue)
            enq[rid] = now
            queue.append(rid)
        self._dispatch(now)  # free workers take what they can first
        if self.capacity is not None:
            while len(queue) > self.capacity:  # then the newest arrivals beyond capacity go
                rid = queue.pop()
                enq[rid] = math.nan
                self.log.drop(rid, SHED, self.index, now)

    def _expire(self, now: float) -> None:
        """Drop the queue head while it has waited longer than the timeout (FIFO: oldest first)."""
        queue, enq, limit = self.queue, self._enq, self.timeout_s
        assert limit is not None
        while queue and enq[queue[0]] + limit < now:
            rid = queue.popleft()
            self.log.drop(rid, TIMEOUT, self.index, enq[rid] + limit)

    # -- batching and service ---------------------------------------------------------------
    def _dispatch(self, now: float) -> None:
        """Start batches while a worker is free and a batch is ready; else arm the batch timer."""
        queue = self.queue
        if self.timeout_s is not None:
            self._expire(now)
        while queue and self.busy < self.workers:
            if len(queue) < self.max_batch and self.max_wait_s > 0.0:
                due = self._enq[queue[0]] + self.max_wait_s
                if due - now > TIME_EPS_S:
                    self._arm(now, due)
                    return
            self._start(now, min(len(queue), self.max_batch))

    def _arm(self, now: float, due: float) -> None:
        if self._timer_at is not None and self._timer_at <= due:
            return  # an earlier (or the same) timer will re-check
        self._timer_at = due
        timer = Timeout(self.env, due - now, due)
        timer.callbacks.append(self._on_timer)

    def _on_timer(self, event: Event) -> None:
        if self._timer_at == event.value:
            self._timer_at = None
        self._dispatch(self.env.now)

    def _start(self, now: float, size: int) -> None:
        queue = self.queue
        batch = [queue.popleft()] if size == 1 else [queue.popleft() for _ in range(size)]
        service = self.sample(size, self._freed)
        if self.slowdown is not None:
            service *= self.slowdown.factor(now)
        self._freed = False
        if self.window is None:
            self.account()
        elif self.machine is None:  # a contended batch's length is known when it ends
            self._add_busy(now, now + service)
        self.busy += 1
        # The requests leave ``after`` before the worker is free (StageSpec.after_ms).
        after = min(self.after_s, service)
        start, svc, bsz = self._start_s, self._svc, self._bsz
        for rid in batch:
            start[rid] = now
            svc[rid] = service - after
            bsz[rid] = size
        if self.machine is not None:
            if after > 0.0:
                self.machine.start(
                    self.spec.contention,
                    service - after,
                    lambda: self._leave_contended(batch, now, after),
                )
            else:
                self.machine.start(
                    self.spec.contention, service, lambda: self._finish_contended(batch, now)
                )
            return
        if after > 0.0:
            Timeout(self.env, service - after, batch).callbacks.append(self._on_leave)
            Timeout(self.env, service).callbacks.append(self._on_free)
            return
        done = Timeout(self.env, service, batch)
        done.callbacks.append(self._on_done)

    def _finish_contended(self, batch: list[int], started: float) -> None:
        """A batch slowed by co-located ones ends: its service is what it really took."""
        now, svc = self.env.now, self._svc
        for rid in batch:
            svc[rid] = now - started
        if self.window is not None:
            self._add_busy(started, now)
        self._done(batch)

    def _leave_contended(self, batch: list[int], started: float, after: float) -> None:
        """A contended batch's requests leave; its worker goes on with ``after`` of work,
        contended as well."""
        now, svc = self.env.now, self._svc
        for rid in batch:
            svc[rid] = now - started
        self.on_exit(batch)
        assert self.machine is not None
        self.machine.start(self.spec.contention, after, lambda: self._free_contended(started))

    def _free_contended(self, started: float) -> None:
        if self.window is not None:
            self._add_busy(started, self.env.now)
        self._free()

    def _add_busy(self, start: float, end: float) -> None:
        """Add a batch's busy time within the measurement window."""
        assert self.window is not None
        lo, hi = max(start, self.window[0]), min(end, self.window[1])
        if hi > lo:
            self.busy_window += hi - lo

    def _on_done(self, event: Event) -> None:
        self._done(event.value)  # type: ignore[arg-type]  # the batch given to Timeout

    def _on_leave(self, event: Event) -> None:
        self.on_exit(event.value)  # type: ignore[arg-type]  # the batch given to Timeout

    def _on_free(self, event: Event) -> None:
        self._free()

    def _done(self, batch: list[int]) -> None:
        self._free(batch)

    def _free(self, batch: list[int] | None = None) -> None:
        """A worker is free (its batch, if given, leaves first) and looks for work."""
        if self.window is None:
            self.account()
        self.busy -= 1
        if self.retiring:
            self.retiring -= 1
            self.workers -= 1
        if batch is not None:
            self.on_exit(batch)
        self._freed = True
        self._dispatch(self.env.now)
        self._freed = False

    # -- scaling ----------------------------------------------------------------------------
    def set_replicas(self, replicas: int) -> None:
        """Resize the pool now: new workers start at once; removed ones finish their batch."""
        self.account()
        per = self.spec.workers_per_replica
        change = (replicas - self.replicas) * per
        self.replicas = replicas
        if change > 0:
            cancel = min(change, self.retiring)  # keep workers that were about to retire
            self.retiring -= cancel
            self.workers += change - cancel
            self._dispatch(self.env.now)
        elif change < 0:
            remove = -change
            idle = self.workers - self.busy  # workers about to retire are all busy
            now_gone = min(remove, idle)
            self.workers -= now_gone
            self.retiring += remove - now_gone

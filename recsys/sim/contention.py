"""Co-located stages slow each other down: a shared machine for the SimPy engine.

Stages served by one process on one small machine (the load test's in-process server) compete
for its cores, caches, memory bandwidth and, in Python, the GIL. Measured on this 2-core
machine, a stage's batch takes about 1.5x as long while the other stage is also serving
(``simulations/calibration.md``). Independent stage servers cannot show that, and it matters
most in bursts: both stages busy, both slower, the burst lasts longer.

Model: a batch of stage ``i`` carries an amount of *work*, its service-time draw (the time it
would take alone). While ``k`` other batches (of any stage) are in service, it progresses at
rate ``1 / (1 + c_i k)``, with ``c_i = StageSpec.contention``. Rates change whenever a batch
starts or finishes anywhere; completions are rescheduled then (a processor-sharing-like
discipline; with every ``c_i = 0`` it is the plain model, event for event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from simpy import Environment, Event, Timeout


@dataclass(eq=False)
class _Job:
    """A batch in service: its stage's contention, remaining work (s) and completion."""

    contention: float
    remaining: float
    on_done: Callable[[], None]
    token: int = 0
    rate: float = 1.0


@dataclass(eq=False)
class SharedMachine:
    """Every batch in service on the machine, progressing at rates set by their number."""

    env: Environment
    jobs: list[_Job] = field(default_factory=list)
    last_t: float = 0.0

    def start(self, contention: float, work_s: float, on_done: Callable[[], None]) -> None:
        """A batch of ``work_s`` seconds of work (alone) starts now; ``on_done`` when done."""
        self._advance()
        self.jobs.append(_Job(contention, work_s, on_done))
        self._reschedule()

    def _advance(self) -> None:
        """Bring every job's remaining work up to now at its current rate."""
        now = self.env.now
        dt = now - self.last_t
        if dt > 0:
            for job in self.jobs:
                job.remaining = max(job.remaining - dt * job.rate, 0.0)
        self.last_t = now

    def _reschedule(self) -> None:
        """New rates for the current number of jobs, and a fresh completion event for each
        (events of earlier schedules are ignored through the job's token)."""
        others = len(self.jobs) - 1
        for job in self.jobs:
            job.rate = 1.0 / (1.0 + job.contention * others)
            job.token += 1
            timer = Timeout(self.env, job.remaining / job.rate, (job, job.token))
            timer.callbacks.append(self._on_timer)

    def _on_timer(self, event: Event) -> None:
        job, token = event.value  # type: ignore[misc]
        if token != job.token or job not in self.jobs:
            return  # rescheduled since, or already done
        self._advance()
        self.jobs.remove(job)
        self._reschedule()
        job.on_done()


def contended(stages: object) -> bool:
    """Whether any stage of ``stages`` (StageSpecs) is slowed by co-located batches."""
    return any(float(getattr(s, "contention", 0.0)) > 0 for s in stages)  # type: ignore[attr-defined]


__all__ = ["SharedMachine", "contended"]

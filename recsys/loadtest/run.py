"""Open-loop load test: replay an arrival trace into a :class:`~recsys.loadtest.server.LiveServer`.

The generator submits every request at its scheduled time, whether or not earlier ones have
finished (open loop: no coordinated omission). It sleeps until just before each arrival, aiming
early by a running estimate of how late ``time.sleep`` wakes up, then spins the last few
microseconds. Latency is measured from the *scheduled* arrival, as the simulator does.

Where the generator runs (``generator``):

- ``"process"`` (the default): its own process (:mod:`recsys.loadtest.sender`), as real
  clients are; it sends request numbers through a pipe, and the calling thread of the server
  process receives them and submits them (the server's ingress: what a real server's network
  thread does). Its spinning and timing then neither hold nor wait for the server's GIL.
  The time from a scheduled arrival to its submission is the **ingress delay**, part of the
  measured latency (``ingress_ms``).
- ``"thread"``: the calling thread generates and submits itself (no pipe, but it competes
  with the stages for the GIL and the cores; kept for tests and comparison).

If the generator itself falls behind its schedule, what it measures is partly its own lag, not
the server's latency: such a run is flagged ``generator_behind`` (and stopped early once any
request is ``abort_lag_ms`` late) instead of being reported as latency.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.errors import ConfigError, DataError, RecsysError
from recsys.loadtest import sender
from recsys.loadtest.server import LiveServer, LiveStage
from recsys.sim.engine import check_arrivals
from recsys.sim.records import PENDING, RequestLog

OK_STATUS, BEHIND, UNFINISHED = "ok", "generator_behind", "unfinished"
GENERATORS = ("process", "thread")
# Time zero of a run lies this far after the server is ready, so the generator process has
# learnt it before the first arrival.
START_LEAD_S = 0.05


class GeneratorBehind(RecsysError):
    """The load generator could not keep to the trace's schedule on this machine."""


class Unfinished(RecsysError):
    """Requests were still in flight when the drain time ran out (the server fell behind)."""


@dataclass(frozen=True)
class LoadTestLimits:
    """Bounds on one load test, and when its generator counts as behind.

        ``max_lag_ms``: the run is ``generator_behind`` when the p99 of the generator's lateness
        (actual minus scheduled submit time) exceeds it. ``abort_lag_ms``: stop generating at once
        when one request is this late. ``drain_s``: after the last arrival, how long requests in
        flight may take to finish before the run is ``unfinished``; it is stopped as ``unfinished``
    at once when more than ``max_in_flight`` requests are in the system (the server cannot keep
    up, and draining the backlog would only take time).
    """

    max_requests: int = 100_000
    max_duration_s: float = 600.0
    max_lag_ms: float = 1.0
    abort_lag_ms: float = 200.0
    drain_s: float = 30.0
    max_in_flight: int = 10_000
    spin_us: float = 50.0

    def __post_init__(self) -> None:
        names = ("max_requests", "max_duration_s", "max_lag_ms", "abort_lag_ms", "drain_s")
        for name in (*names, "max_in_flight"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"loadtest.{name} must be positive, got {getattr(self, name)}")
        if self.spin_us < 0:
            raise ConfigError(f"loadtest.spin_us must be >= 0, got {self.spin_us}")

    def check(self, times: np.ndarray) -> None:
        """Refuse a trace beyond the bounds before any load is generated."""
        if times.size > self.max_requests:
            raise ConfigError(
                f"the trace has {times.size} requests; the load test allows at most "
                f"loadtest.max_requests={self.max_requests}"
            )
        if times[-1] > self.max_duration_s:
            raise ConfigError(
                f"the trace spans {times[-1]:.1f} s; the load test allows at most "
                f"loadtest.max_duration_s={self.max_duration_s:g} s"
            )


@dataclass(frozen=True, eq=False)
class LoadTestResult:
    """Per-request records in the simulator's format, plus the generator's lateness."""

    records: pd.DataFrame
    stages: list[str]
    warmup_s: float
    status: str
    message: str
    lateness_ms: np.ndarray
    wall_s: float
    ready_s: dict[str, np.ndarray] = field(default_factory=dict)
    cpu_s: dict[str, np.ndarray] = field(default_factory=dict)
    release_s: dict[str, np.ndarray] = field(default_factory=dict)
    warm: dict[str, np.ndarray] = field(default_factory=dict)
    generator_mode: str = "thread"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK_STATUS

    def dispatch_ms(self, stage: str) -> np.ndarray:
        """Per request: how long after its batch could start it did start (wake-up, GIL)."""
        start = self.records[f"{stage}_start_s"].to_numpy()
        return (start - self.ready_s[stage]) * 1000.0

    def hold_ms(self, stage: str) -> np.ndarray:
        """Per request: how long its batch held the worker, from the moment it could start
        until the worker was free again (dispatch + service + handing the results on)."""
        return (self.release_s[stage] - self.ready_s[stage]) * 1000.0

    def overhead_ms(self, stage: str) -> np.ndarray:
        """Per request: the part of :meth:`hold_ms` outside the stage's own service time."""
        return self.hold_ms(stage) - self.records[f"{stage}_service_ms"].to_numpy()

    def ingress_ms(self) -> np.ndarray:
        """Per request: scheduled arrival to joining the first queue (receive path), ms."""
        first = self.records[f"{self.stages[0]}_enqueue_s"].to_numpy()
        return (first - self.records["arrival_s"].to_numpy()) * 1000.0

    def cpu_ms(self, stage: str) -> np.ndarray:
        """Per request: CPU time its stage's worker thread used on its batch."""
        return self.cpu_s[stage] * 1000.0

    def generator(self) -> dict[str, float]:
        """Lateness of the generator over the measured requests (ms)."""
        measured = self.records["arrival_s"].to_numpy() >= self.warmup_s
        late = self.lateness_ms[measured & np.isfinite(self.lateness_ms)]
        if late.size == 0:
            return {"lag_p50_ms": math.nan, "lag_p99_ms": math.nan, "lag_max_ms": math.nan}
        p50, p99 = np.percentile(late, [50, 99])
        out = {"lag_p50_ms": float(p50), "lag_p99_ms": float(p99), "lag_max_ms": float(late.max())}
        ingress = self.ingress_ms()[measured]
        ingress = ingress[np.isfinite(ingress)]
        if ingress.size:
            i50, i99 = np.percentile(ingress, [50, 99])
            out |= {"ingress_p50_ms": float(i50), "ingress_p99_ms": float(i99)}
        return out

    def raise_for_status(self) -> None:
        """:class:`GeneratorBehind` or :class:`Unfinished` unless the run is usable."""
        if self.status == BEHIND:
            raise GeneratorBehind(self.message)
        if self.status == UNFINISHED:
            raise Unfinished(self.message)

    def detailed_records(self, probe: np.ndarray | None = None) -> pd.DataFrame:
        """The records plus what the simulator has no field for, per stage (``*_ready_s``,
        ``*_release_s``, ``*_warm``, ``*_cpu_ms``), the generator's ``lateness_ms``, and
        ``probe`` (whether the request fitted the calibrated model rather than being measured;
        all False without ``probe``): everything :func:`from_detailed` needs to analyse the
        run again offline."""
        extra: dict[str, Any] = {"lateness_ms": self.lateness_ms}
        for stage in self.stages:
            extra[f"{stage}_ready_s"] = self.ready_s[stage]
            extra[f"{stage}_release_s"] = self.release_s[stage]
            extra[f"{stage}_warm"] = self.warm[stage].astype(bool)
            extra[f"{stage}_cpu_ms"] = self.cpu_ms(stage)
        extra["probe"] = np.zeros(len(self.records), bool) if probe is None else probe
        return self.records.assign(**extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "requests": len(self.records),
            "warmup_s": self.warmup_s,
            "wall_s": self.wall_s,
            "generator_mode": self.generator_mode,
            "generator": self.generator(),
            **self.extra,
        }


def from_detailed(frame: pd.DataFrame, stages: Sequence[str], warmup_s: float) -> LoadTestResult:
    """A :class:`LoadTestResult` back from :meth:`LoadTestResult.detailed_records` (status
    ``ok``; the run's own status is in its report)."""
    detail = {f"{s}_{k}" for s in stages for k in ("ready_s", "release_s", "warm", "cpu_ms")}
    missing = sorted(detail - set(frame.columns))
    if missing:
        raise DataError(f"detailed load-test records lack columns {missing}")
    return LoadTestResult(
        records=frame.drop(columns=[*detail, "lateness_ms", "probe"], errors="ignore"),
        stages=list(stages),
        warmup_s=warmup_s,
        status=OK_STATUS,
        message="",
        lateness_ms=frame["lateness_ms"].to_numpy(np.float64),
        wall_s=math.nan,
        ready_s={s: frame[f"{s}_ready_s"].to_numpy(np.float64) for s in stages},
        cpu_s={s: frame[f"{s}_cpu_ms"].to_numpy(np.float64) / 1000.0 for s in stages},
        release_s={s: frame[f"{s}_release_s"].to_numpy(np.float64) for s in stages},
        warm={s: frame[f"{s}_warm"].to_numpy(bool) for s in stages},
        generator_mode="offline",
    )


def _generate(server: LiveServer, times: np.ndarray, limits: LoadTestLimits) -> tuple[int, str]:
    """Submit every request at its time; the number submitted and why it stopped early."""
    clock, n, at = server.clock, times.size, times.tolist()
    abort_s = limits.abort_lag_ms / 1000.0
    pacer = sender.Pacer(clock, limits.spin_us / 1e6)
    finished, max_in_flight = server.finished, limits.max_in_flight
    i = 0
    while i < n:
        t = at[i]
        pacer.wait_until(t)
        if clock() - t > abort_s:
            return i, BEHIND
        if finished.is_set():
            return i, "error"
        if i - (n - server.outstanding) > max_in_flight:
            return i, UNFINISHED
        # Requests go one by one (those sharing a timestamp together), late or not, so a
        # generator that cannot keep the pace shows it in every later request's lateness.
        j = sender.group_end(at, i)
        server.submit(range(i, j))
        i = j
    return n, OK_STATUS


def _receive(
    server: LiveServer, times: np.ndarray, limits: LoadTestLimits
) -> tuple[int, str, np.ndarray]:
    """Run the generator process and submit what it sends; (submitted, stop reason, lateness
    of each request in ms, NaN where never sent)."""
    n, max_in_flight = times.size, limits.max_in_flight
    with tempfile.TemporaryDirectory(prefix="recsys-loadtest-") as tmp:
        arrivals_path, late_path = Path(tmp) / "arrivals.npy", Path(tmp) / "late.npy"
        np.save(arrivals_path, times)
        script = Path(sender.__file__)
        args = [str(arrivals_path), str(late_path), repr(limits.spin_us), repr(limits.abort_lag_ms)]
        proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        fd, record = proc.stdout.fileno(), sender.RECORD
        stopped, submitted = OK_STATUS, 0
        try:
            if os.read(fd, 1) != sender.READY:
                raise RuntimeError("the load generator process did not start")
            server.start(delay_s=START_LEAD_S)
            proc.stdin.write(f"{server.clock.t0!r}\n".encode())
            proc.stdin.close()
            pending = b""
            while chunk := os.read(fd, 65536):
                pending += chunk
                whole = len(pending) - len(pending) % record.size
                for first, end in record.iter_unpack(pending[:whole]):
                    server.submit(range(first, end))
                    submitted = end
                pending = pending[whole:]
                if server.finished.is_set() and server.error is not None:
                    stopped = "error"
                    break
                if submitted - (n - server.outstanding) > max_in_flight:
                    stopped = UNFINISHED
                    break
        finally:
            if proc.poll() is None and stopped != OK_STATUS:
                proc.kill()
            code = proc.wait()
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        if stopped == OK_STATUS and code == sender.BEHIND_EXIT:
            stopped = BEHIND
        elif stopped == OK_STATUS and code != 0:
            raise RuntimeError(f"the load generator process failed (exit {code}): {err[-500:]}")
        lateness = np.load(late_path) * 1000.0 if late_path.exists() else np.full(n, np.nan)
    # Stopped before it could save its own timing: the receive side's lateness (an upper
    # bound on the generator's) stands in for the requests it did send.
    received = (np.frombuffer(server.log.enqueue_s[0], dtype=np.float64) - times) * 1000.0
    return submitted, stopped, np.where(np.isnan(lateness), received, lateness)


def run_loadtest(
    arrivals: np.ndarray | Sequence[float],
    stages: Sequence[LiveStage],
    payloads: Sequence[Any] | np.ndarray,
    *,
    warmup_s: float = 0.0,
    limits: LoadTestLimits | None = None,
    generator: str = "process",
    gc_freeze: bool = True,
) -> LoadTestResult:
    """Serve ``payloads[i]`` (the first stage's input) arriving at ``arrivals[i]`` seconds.

    ``generator``: ``"process"`` (a separate generator process, the default) or ``"thread"``
    (the calling thread; see the module docstring). ``gc_freeze``: collect, then freeze every
    object that exists before the run (``gc.freeze``), as production Python servers do after
    loading their models: the cyclic garbage collector then scans only objects made during
    the run. Without it, one full collection of the models' objects stops every thread for
    about 100 ms on this machine (measured), once every few seconds of load.

    Returns records in the simulator's format (:meth:`RequestLog.to_frame`); requests that
    never finished have outcome NA. Check ``status`` (or call ``raise_for_status``).
    """
    if generator not in GENERATORS:
        raise ConfigError(
            f"loadtest.generator must be one of {list(GENERATORS)}, got {generator!r}"
        )
    limits = limits or LoadTestLimits()
    times = check_arrivals(arrivals)
    limits.check(times)
    if len(payloads) != times.size:
        raise ConfigError(f"{len(payloads)} payloads for {times.size} arrivals")
    log = RequestLog(times, len(stages))
    server = LiveServer(stages, log, list(payloads))
    started = time.perf_counter()
    with frozen_gc(gc_freeze):
        if generator == "process":
            submitted, stopped, lateness = _receive(server, times, limits)
        else:
            server.start()
            submitted, stopped = _generate(server, times, limits)
            lateness = (np.frombuffer(log.enqueue_s[0], dtype=np.float64) - times) * 1000.0
        status, message = _status(times, lateness, submitted, stopped, warmup_s, limits)
        if status == OK_STATUS and not server.finished.wait(limits.drain_s):
            status, message = (
                UNFINISHED,
                (
                    f"requests were still in flight {limits.drain_s:g} s after the last arrival "
                    f"({_rate(times)}): the server cannot keep up with this trace"
                ),
            )
        server.stop(abandon=not server.finished.is_set())
    wall = time.perf_counter() - started
    if server.error is not None:
        raise server.error
    names = [s.name for s in stages]
    frame = log.to_frame(names)
    outcome = np.frombuffer(log.outcome, dtype=np.int8)
    frame.loc[outcome == PENDING, "outcome"] = pd.NA

    def per_stage(field: str) -> dict[str, np.ndarray]:
        return {
            p.stage.name: np.frombuffer(getattr(p, field), dtype=np.float64) for p in server.pools
        }

    return LoadTestResult(
        frame,
        names,
        warmup_s,
        status,
        message,
        lateness,
        wall,
        ready_s=per_stage("ready_s"),
        cpu_s=per_stage("cpu_s"),
        release_s=per_stage("release_s"),
        warm={p.stage.name: np.frombuffer(p.warm, np.int8).astype(bool) for p in server.pools},
        generator_mode=generator,
    )


@contextlib.contextmanager
def frozen_gc(freeze: bool = True) -> Iterator[None]:
    """Within the block, objects that existed before it are exempt from garbage collection."""
    if not freeze:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _rate(times: np.ndarray) -> str:
    span = float(times[-1] - times[0])
    return f"trace rate {times.size / span:,.0f} QPS" if span > 0 else "all at one instant"


def _status(
    times: np.ndarray,
    lateness_ms: np.ndarray,
    submitted: int,
    stopped: str,
    warmup_s: float,
    limits: LoadTestLimits,
) -> tuple[str, str]:
    """Judge the generator before waiting for the server (a lagging run is not drained)."""
    n = times.size
    if stopped == BEHIND:
        return BEHIND, (
            f"the load generator fell more than loadtest.abort_lag_ms={limits.abort_lag_ms:g} "
            f"ms behind its schedule at request {submitted} of {n} ({_rate(times)}) and "
            "stopped: this machine cannot drive this trace open-loop, so no latency is "
            "reported; lower the rate or shorten the trace"
        )
    finite = np.isfinite(lateness_ms)
    measured = finite & (times >= warmup_s)
    late = lateness_ms[measured] if measured.any() else lateness_ms[finite]
    p99 = float(np.percentile(late, 99)) if late.size else math.inf
    worst = float(late.max()) if late.size else math.inf
    if p99 > limits.max_lag_ms:
        return BEHIND, (
            f"the load generator ran behind its schedule: p99 lateness {p99:.2f} ms > "
            f"loadtest.max_lag_ms={limits.max_lag_ms:g} (worst {worst:.2f} ms; "
            f"{_rate(times)}); this machine cannot drive this trace open-loop, and its "
            "latencies would include the generator's own lag, so none are reported"
        )
    if stopped == UNFINISHED:
        return UNFINISHED, (
            f"more than loadtest.max_in_flight={limits.max_in_flight} requests were in the "
            f"system at request {submitted} of {n} ({_rate(times)}): the server cannot keep "
            "up with this trace, so the run was stopped"
        )
    return OK_STATUS, f"{n} requests ({_rate(times)}); generator p99 lateness {p99:.3f} ms"

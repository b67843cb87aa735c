"""Whole-process stalls: stretches of time in which nothing in the served process runs.

A small virtual machine (2 vCPUs here) is now and then not run by its host at all, or the
served process is held up as a whole (its threads wait for one another behind the GIL, the
kernel pages, the hypervisor steals the CPUs). Measured in the load test on this machine,
a handful of such stalls of 8-35 ms set a level's p99: every thread of the server stops
together, so the batch in service of *every* stage takes that much longer and the requests
arriving meanwhile are received only when it ends (``simulations/calibration.md``). Drawing
each stage's service times independently cannot make delays that strike all stages at once.

Model: a :class:`StallPath` is a list of stalls ``[start, start + duration)`` in real time.
The served process runs on its own clock, **server time**, which stands still during a
stall. A simulation runs in server time: arrivals are mapped into it
(:meth:`StallPath.to_server`: an arrival during a stall is received at its end), the
simulator runs unchanged, and every time it reports is mapped back
(:meth:`StallPath.to_real`: an event at server time ``tau`` happens after every stall that
began at or before ``tau``). That is exact for a process that stops as a whole; it needs
nothing from the engine, so every engine supports it (:func:`unwarp_records`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from recsys.errors import ConfigError


class ServerClock(Protocol):
    """A map between real time and the served process's own clock (:class:`StallPath`,
    :class:`~recsys.sim.warp.ClockWarp`); ``len`` is 0 for the identity."""

    def __len__(self) -> int: ...

    def to_server(self, t: np.ndarray) -> np.ndarray: ...

    def to_real(self, tau: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class StallPath:
    """Stalls starting at ``starts_s`` (seconds, real time) lasting ``durations_s``."""

    starts_s: np.ndarray
    durations_s: np.ndarray

    def __post_init__(self) -> None:
        starts = np.asarray(self.starts_s, dtype=np.float64).ravel()
        durations = np.asarray(self.durations_s, dtype=np.float64).ravel()
        if starts.shape != durations.shape:
            raise ConfigError("stall starts and durations must have the same length")
        if not (np.all(np.isfinite(starts)) and np.all(np.isfinite(durations))):
            raise ConfigError("stall starts and durations must be finite")
        if durations.size and durations.min() < 0:
            raise ConfigError("stall durations must be >= 0")
        order = np.argsort(starts, kind="stable")
        starts, durations = _merge(starts[order], durations[order])
        object.__setattr__(self, "starts_s", starts)
        object.__setattr__(self, "durations_s", durations)
        # Where each stall sits on the server's clock, and the stall time before it.
        before = np.concatenate([[0.0], np.cumsum(durations)[:-1]]) if starts.size else starts
        object.__setattr__(self, "_before", before)
        object.__setattr__(self, "_server_at", starts - before)

    @property
    def total_s(self) -> float:
        return float(self.durations_s.sum())

    def __len__(self) -> int:
        return int(self.starts_s.size)

    def to_server(self, t: np.ndarray) -> np.ndarray:
        """Real times -> server times (a time inside a stall maps to the stall's end)."""
        t = np.asarray(t, dtype=np.float64)
        if not len(self):
            return t.copy()
        k = np.searchsorted(self.starts_s, t, side="right") - 1  # last stall begun by t
        kk = np.clip(k, 0, None)
        inside = np.minimum(t - self.starts_s[kk], self.durations_s[kk])
        stalled = np.where(k >= 0, self._before[kk] + inside, 0.0)  # type: ignore[attr-defined]
        return np.where(np.isnan(t), np.nan, t - stalled)

    def to_real(self, tau: np.ndarray) -> np.ndarray:
        """Server times -> real times: an event at ``tau`` happens after every stall that began
        at or before ``tau`` on the server's clock."""
        tau = np.asarray(tau, dtype=np.float64)
        if not len(self):
            return tau.copy()
        server_at = self._server_at  # type: ignore[attr-defined]
        k = np.searchsorted(server_at, tau, side="right") - 1
        kk = np.clip(k, 0, None)
        passed = np.where(k >= 0, self._before[kk] + self.durations_s[kk], 0.0)  # type: ignore[attr-defined]
        return np.where(np.isnan(tau), np.nan, tau + passed)

    def overlap_s(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Stall time inside each real interval ``[lo, hi]``."""
        return (hi - lo) - (self.to_server(hi) - self.to_server(lo))


def _merge(starts: np.ndarray, durations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping (sorted) stalls joined into one."""
    if starts.size < 2:
        return starts, durations
    out_s, out_e = [starts[0]], [starts[0] + durations[0]]
    for s, d in zip(starts[1:].tolist(), durations[1:].tolist(), strict=True):
        if s <= out_e[-1]:
            out_e[-1] = max(out_e[-1], s + d)
        else:
            out_s.append(s)
            out_e.append(s + d)
    s_arr, e_arr = np.asarray(out_s), np.asarray(out_e)
    return s_arr, e_arr - s_arr


def poisson_path(
    rate_per_s: float,
    durations_s: np.ndarray,
    span_s: float,
    rng: np.random.Generator,
) -> StallPath:
    """Stalls at the times of a Poisson process of ``rate_per_s`` over ``[0, span_s)``, each
    lasting a duration drawn from the measured ``durations_s``."""
    durations = np.asarray(durations_s, dtype=np.float64)
    if rate_per_s < 0 or not math.isfinite(rate_per_s):
        raise ConfigError(f"stall rate must be finite and >= 0, got {rate_per_s}")
    if rate_per_s == 0 or durations.size == 0 or span_s <= 0:
        return StallPath(np.empty(0), np.empty(0))
    n = int(rng.poisson(rate_per_s * span_s))
    starts = np.sort(rng.uniform(0.0, span_s, size=n))
    return StallPath(starts, rng.choice(durations, size=n))


@dataclass(frozen=True, eq=False)
class StallModel:
    """How often the process stalls and for how long: ``rate_per_s`` stalls per second of
    run, each lasting one of the measured ``durations_s``. With ``replay`` every simulation
    replays that path instead (a diagnostic: the stalls a run really had, in time)."""

    rate_per_s: float
    durations_s: np.ndarray
    replay: StallPath | None = None

    def __post_init__(self) -> None:
        durations = np.asarray(self.durations_s, dtype=np.float64).ravel()
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s >= 0):
            raise ConfigError(f"stall rate must be finite and >= 0, got {self.rate_per_s}")
        if not (np.all(np.isfinite(durations)) and (durations.size == 0 or durations.min() >= 0)):
            raise ConfigError("stall durations must be finite and >= 0")
        object.__setattr__(self, "durations_s", durations)

    def path(self, span_s: float, rng: np.random.Generator) -> StallPath:
        """One realisation over ``[0, span_s)`` (or the replayed path)."""
        if self.replay is not None:
            return self.replay
        return poisson_path(self.rate_per_s, self.durations_s, span_s, rng)

    def describe(self) -> dict[str, float]:
        d = self.durations_s * 1000.0
        return {
            "rate_per_s": self.rate_per_s,
            "measured": int(d.size),
            "p50_ms": float(np.median(d)) if d.size else math.nan,
            "max_ms": float(d.max()) if d.size else math.nan,
            "stalled_fraction": self.rate_per_s * float(self.durations_s.mean()) if d.size else 0.0,
            "replay": self.replay is not None,
        }


def map_records(
    records: pd.DataFrame, stages: Sequence[str], to: Callable[[np.ndarray], np.ndarray]
) -> pd.DataFrame:
    """Records with every timestamp mapped by ``to`` (one clock to another) and the waits,
    services and end-to-end latencies recomputed from the mapped times."""
    out = records.copy()
    arrival = to(records["arrival_s"].to_numpy(np.float64))
    out["arrival_s"] = arrival
    for s in stages:
        enq = records[f"{s}_enqueue_s"].to_numpy(np.float64)
        start = records[f"{s}_start_s"].to_numpy(np.float64)
        end = start + records[f"{s}_service_ms"].to_numpy(np.float64) / 1000.0
        # A request that never started waited until it left (dropped or timed out).
        left = enq + records[f"{s}_wait_ms"].to_numpy(np.float64) / 1000.0
        enq_m, start_m = to(enq), to(start)
        out[f"{s}_enqueue_s"] = enq_m
        out[f"{s}_start_s"] = start_m
        out[f"{s}_wait_ms"] = (np.where(np.isnan(start), to(left), start_m) - enq_m) * 1000.0
        out[f"{s}_service_ms"] = (to(end) - start_m) * 1000.0
    done = to(records["done_s"].to_numpy(np.float64))
    out["done_s"] = done
    out["e2e_ms"] = (done - arrival) * 1000.0
    return out


def unwarp_records(
    records: pd.DataFrame, path: ServerClock, stages: Sequence[str], arrival_s: np.ndarray
) -> pd.DataFrame:
    """Records of a simulation run in server time, in real time (``path.to_real``),
    its end-to-end latencies counted from the real (scheduled) ``arrival_s``: a request
    that arrived during a stall waited for it."""
    out = map_records(records, stages, path.to_real)
    out["arrival_s"] = arrival_s
    out["e2e_ms"] = (out["done_s"].to_numpy(np.float64) - arrival_s) * 1000.0
    return out


__all__ = [
    "ServerClock",
    "StallModel",
    "StallPath",
    "map_records",
    "poisson_path",
    "unwarp_records",
]

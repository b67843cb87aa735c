"""Slow spells of the whole served process: its clock runs slower than real time.

On a small shared machine the served process is now and then starved as a whole for a few
to a few dozen milliseconds: the host runs the VM's vCPUs part-time, and every thread of the
server (the one receiving requests as well as every stage's workers) runs slowly *together*.
Measured in the load test on this machine, the worst of such spells set the p99: the
receiving thread delivers nothing for 10-30 ms while both workers' batches take 10-20x their
usual time, so the requests that arrive meanwhile are received late, in a clump, and queue
behind batches that are slow themselves (``simulations/calibration.md``). Drawing the ingress
delay and each stage's service times independently cannot make that: the slow parts of a
request's path come at the same time.

Model: the process runs on its own clock, **server time**, which runs at ``1 / f`` of real
time while the machine is ``f`` times slower than usual (a step function of real time over
windows of ``window_s``). Everything the server does (receiving, serving, handing on) takes
its usual server time; a simulation runs in server time (arrivals mapped in with
:meth:`ClockWarp.to_server`) and every time it reports is mapped back
(:meth:`ClockWarp.to_real`), as for whole-process stalls (:mod:`recsys.sim.stalls`, the
limit ``f -> inf``). It needs nothing from the engine. :class:`WarpModel` draws such clocks
from measured window factors in blocks (a block bootstrap keeps a spell's neighbours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recsys.errors import ConfigError


@dataclass(frozen=True, eq=False)
class ClockWarp:
    """A server clock that runs at ``1 / factors[i]`` of real time in the real window
    ``[origin_s + i window_s, origin_s + (i + 1) window_s)`` and at real speed outside."""

    origin_s: float
    window_s: float
    factors: np.ndarray

    def __post_init__(self) -> None:
        factors = np.asarray(self.factors, dtype=np.float64).ravel()
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ConfigError(f"clock warp window_s must be > 0, got {self.window_s}")
        if not math.isfinite(self.origin_s):
            raise ConfigError("clock warp origin_s must be finite")
        if not (np.all(np.isfinite(factors)) and (factors.size == 0 or factors.min() > 0)):
            raise ConfigError("clock warp factors must be finite and > 0")
        object.__setattr__(self, "factors", factors)
        real = self.origin_s + self.window_s * np.arange(factors.size + 1)
        server = self.origin_s + np.concatenate([[0.0], np.cumsum(self.window_s / factors)])
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_server", server)

    def __len__(self) -> int:
        """Windows in which the clock does not run at real speed."""
        return int(np.count_nonzero(self.factors != 1.0))

    @property
    def lost_s(self) -> float:
        """Real time minus server time over the warped windows (> 0: slower on the whole)."""
        return float(self._real[-1] - self._server[-1])  # type: ignore[attr-defined]

    def to_server(self, t: np.ndarray) -> np.ndarray:
        """Real times -> server times."""
        return _piecewise(np.asarray(t, dtype=np.float64), self._real, self._server)  # type: ignore[attr-defined]

    def to_real(self, tau: np.ndarray) -> np.ndarray:
        """Server times -> real times."""
        return _piecewise(np.asarray(tau, dtype=np.float64), self._server, self._real)  # type: ignore[attr-defined]


def _piecewise(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The increasing piecewise-linear map through ``(xs, ys)``, slope 1 outside."""
    out = np.interp(x, xs, ys)
    out = np.where(x > xs[-1], ys[-1] + (x - xs[-1]), out)
    out = np.where(x < xs[0], ys[0] + (x - xs[0]), out)
    return np.where(np.isnan(x), np.nan, out)


@dataclass(frozen=True, eq=False)
class WarpModel:
    """How much slower than usual the whole process ran, window by window: ``factors`` of
    consecutive windows of ``window_s`` (in time order, as measured), drawn for each
    simulation in blocks of ``block`` windows. With ``replay`` every simulation replays that
    clock instead (a diagnostic: the spells a run really had, in time)."""

    window_s: float
    factors: np.ndarray
    block: int = 10
    replay: ClockWarp | None = None

    def __post_init__(self) -> None:
        factors = np.asarray(self.factors, dtype=np.float64).ravel()
        if factors.size == 0:
            raise ConfigError("a clock warp model needs at least one measured window")
        if self.block < 1:
            raise ConfigError(f"clock warp block must be >= 1, got {self.block}")
        ClockWarp(0.0, self.window_s, factors)  # validates window and factors
        object.__setattr__(self, "factors", factors)

    def path(self, span_s: float, rng: np.random.Generator) -> ClockWarp:
        """One clock over ``[0, span_s)`` from the measured windows, block by block."""
        if self.replay is not None:
            return self.replay
        n = max(1, math.ceil(span_s / self.window_s))
        block = min(self.block, self.factors.size)
        starts = rng.integers(0, self.factors.size - block + 1, size=-(-n // block))
        drawn = np.concatenate([self.factors[s : s + block] for s in starts])[:n]
        return ClockWarp(0.0, self.window_s, drawn)

    def describe(self) -> dict[str, float]:
        f = self.factors
        return {
            "window_ms": 1000.0 * self.window_s,
            "windows": int(f.size),
            "p99": float(np.quantile(f, 0.99)),
            "max": float(f.max()),
            "slow_share": float(np.mean(f >= 2.0)),  # windows at half speed or worse
            "lost_fraction": float(np.mean(1.0 - 1.0 / f)),
            "replay": self.replay is not None,
        }


__all__ = ["ClockWarp", "WarpModel"]

"""How the machine's speed drifts during a load test, from its batches.

Every batch's work (its hold time with co-located batches' slowdown divided out,
:mod:`recsys.loadtest.contention`) is divided by the mean work of batches like it (same stage,
batch size, warm or cold): its *ratio*. The mean ratio of the batches that start in a window
of ``window_s`` is the machine's speed factor there. A window of a few dozen batches carries
sampling noise as well as the drift, so each window's mean is shrunk towards 1 by the share
of its variance the noise explains (empirical Bayes: ``tau^2 / (tau^2 + s^2 / n)``, with
``tau^2`` the between-window variance left after the noise). The simulator then draws service
times from the batches' work with the factor divided out and multiplies each draw by a
block-bootstrapped path of factors (:mod:`recsys.sim.slowdown`): the drift is counted once,
in time, not also in the spread of single batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.errors import ConfigError
from recsys.sim.slowdown import Slowdown

GROUP = ("stage", "batch_size", "warm")


@dataclass(frozen=True, eq=False)
class Drift:
    """Window factors (mean 1 over batches) of the windows that had batches, in time order,
    and what the estimate rests on."""

    window_s: float
    factors: np.ndarray
    raw_cv: float  # spread of the window means before shrinking
    cv: float  # spread of the shrunk factors: the drift the simulator replays
    noise_share: float  # share of the raw windows' variance that sampling noise explains
    # Where each factor's window starts on the run's clock (s): what replay_path puts back.
    starts_s: np.ndarray | None = None

    def replay_path(self, duration_s: float) -> Slowdown:
        """The measured drift in time, on the run's own clock, for ``duration_s``: windows
        without batches (e.g. the measured requests' chunks of an interleaved probe) take
        the value interpolated between their neighbours. For holding a simulation against
        the very run the drift was measured in (a trace of the machine's speed, like the
        trace of its arrivals); a prediction draws paths instead (``bootstrap_path``)."""
        if self.starts_s is None:
            raise ConfigError("this drift estimate has no window times to replay")
        n = max(1, math.ceil(duration_s / self.window_s) + 1)
        centers = (np.arange(n) + 0.5) * self.window_s
        seen = self.starts_s + 0.5 * self.window_s
        return Slowdown(self.window_s, np.interp(centers, seen, self.factors))

    def describe(self) -> dict[str, float]:
        return {
            "window_ms": 1000.0 * self.window_s,
            "windows": int(self.factors.size),
            "raw_cv": self.raw_cv,
            "cv": self.cv,
            "noise_share": self.noise_share,
        }


def estimate_drift(
    batches: pd.DataFrame, window_s: float, work: str = "work_ms"
) -> tuple[Drift, pd.DataFrame]:
    """The drift of ``batches`` (columns ``stage, batch_size, warm, ready_s`` and ``work``)
    in windows of ``window_s``, and the batches with ``work`` divided by their window's
    factor (column ``drift`` holds it)."""
    if not window_s > 0:
        raise ConfigError(f"drift window must be > 0, got {window_s}")
    if batches.empty:
        raise ConfigError("drift: no batches to estimate from")
    out = batches.copy()
    w = out[work].to_numpy(dtype=np.float64)
    mean = out.groupby(list(GROUP))[work].transform("mean").to_numpy(dtype=np.float64)
    ratio = np.divide(w, mean, out=np.ones_like(w), where=mean > 0)
    t = out["ready_s"].to_numpy(dtype=np.float64)
    # Windows on the run's own clock (whole multiples of window_s), so that a replayed path
    # lines up with the requests it is held against.
    origin = np.floor(t.min() / window_s) * window_s
    window = np.floor((t - origin) / window_s).astype(np.int64)
    n_windows = int(window.max()) + 1
    n = np.bincount(window, minlength=n_windows).astype(np.float64)
    total = np.bincount(window, weights=ratio, minlength=n_windows)
    squares = np.bincount(window, weights=ratio**2, minlength=n_windows)
    seen = n > 0
    raw = np.ones(n_windows)
    raw[seen] = total[seen] / n[seen]
    # Within-window variance of one ratio, pooled; the noise of a window mean is that / n.
    within = float((squares[seen] - n[seen] * raw[seen] ** 2).sum() / max(n[seen].sum() - 1, 1))
    noise = np.where(seen, within / np.maximum(n, 1.0), np.inf)
    between = float(np.average((raw[seen] - 1.0) ** 2, weights=n[seen]))
    tau2 = max(between - float(np.average(noise[seen], weights=n[seen])), 0.0)
    shrink = np.where(seen, tau2 / (tau2 + noise), 0.0)
    factors = 1.0 + (raw - 1.0) * shrink
    # Mean 1 over batches: the factor moves service times in time, not their level.
    factors /= float(np.average(factors, weights=np.maximum(n, 1e-12)))
    out["drift"] = factors[window]
    out[work] = w / out["drift"].to_numpy()
    drift = Drift(
        window_s=float(window_s),
        factors=factors[seen],  # windows without batches (outside the probe) say nothing
        starts_s=origin + window_s * np.flatnonzero(seen),
        raw_cv=float(np.sqrt(between)),
        cv=float(np.sqrt(np.average((factors[seen] - 1.0) ** 2, weights=n[seen]))),
        noise_share=float(min(1.0, np.average(noise[seen], weights=n[seen]) / between))
        if between > 0
        else 1.0,
    )
    return drift, out


__all__ = ["Drift", "estimate_drift"]

"""Service-time models: how long one batch of ``b`` requests keeps a worker busy.

A model answers two questions (the :class:`ServiceTimeModel` protocol): draw service times for a
batch size, and give their mean. Times are in **seconds**; parameters in milliseconds carry
``_ms`` in their names.

- :class:`EmpiricalServiceTime` replays the measured samples of a profile table (one row per
  timed call) and interpolates quantiles between profiled batch sizes.
- :class:`Deterministic`, :class:`Exponential`, :class:`LogNormal` and :class:`Gamma` are
  analytic what-if models given by ``mean_ms`` (and ``cv``), with a linear batch cost
  ``mean_ms + per_item_ms * (b - 1)``.
- :class:`Scaled` divides any model by a hardware speed factor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from recsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@runtime_checkable
class ServiceTimeModel(Protocol):
    """Service time of one batch, in seconds."""

    def sample(
        self, batch_size: int, rng: np.random.Generator, size: int | None = None
    ) -> float | np.ndarray:
        """One draw (``size=None``) or an array of ``size`` draws for a batch of ``batch_size``."""
        ...

    def mean_s(self, batch_size: int) -> float:
        """Mean service time of a batch of ``batch_size``."""
        ...


def describe_model(model: ServiceTimeModel) -> dict[str, Any]:
    """The model's stated assumptions, for the report (falls back to the class name)."""
    describe = getattr(model, "describe", None)
    return describe() if callable(describe) else {"kind": type(model).__name__}


def _check_batch(batch_size: int) -> int:
    b = int(batch_size)
    if b < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    return b


class _Analytic:
    """Shared parameters of the analytic models: batch mean = mean_ms + per_item_ms * (b - 1)."""

    kind = "analytic"
    cv: float = 0.0

    def __init__(self, mean_ms: float, per_item_ms: float = 0.0) -> None:
        if not (math.isfinite(mean_ms) and mean_ms > 0):
            raise ConfigError(f"{self.kind}: mean_ms must be a positive number, got {mean_ms}")
        if not (math.isfinite(per_item_ms) and per_item_ms >= 0):
            raise ConfigError(f"{self.kind}: per_item_ms must be >= 0, got {per_item_ms}")
        self.mean_ms = float(mean_ms)
        self.per_item_ms = float(per_item_ms)

    def mean_s(self, batch_size: int) -> float:
        return (self.mean_ms + self.per_item_ms * (_check_batch(batch_size) - 1)) / 1000.0

    def sample(
        self, batch_size: int, rng: np.random.Generator, size: int | None = None
    ) -> float | np.ndarray:
        return self._draw(self.mean_s(batch_size), rng, size)

    def _draw(self, mean: float, rng: np.random.Generator, size: int | None) -> float | np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mean_ms": self.mean_ms,
            "per_item_ms": self.per_item_ms,
            "cv": self.cv,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "kind")
        return f"{type(self).__name__}({args})"


class Deterministic(_Analytic):
    """Every batch takes exactly its mean (cv = 0); draws no random numbers."""

    kind = "deterministic"

    def _draw(self, mean: float, rng: np.random.Generator, size: int | None) -> float | np.ndarray:
        return mean if size is None else np.full(size, mean)


class Exponential(_Analytic):
    """Exponential service (cv = 1): the M in M/M/c."""

    kind = "exponential"
    cv = 1.0

    def _draw(self, mean: float, rng: np.random.Generator, size: int | None) -> float | np.ndarray:
        return rng.exponential(mean, size)


class _WithCV(_Analytic):
    def __init__(self, mean_ms: float, cv: float, per_item_ms: float = 0.0) -> None:
        super().__init__(mean_ms, per_item_ms)
        if not (math.isfinite(cv) and cv >= 0):
            raise ConfigError(f"{self.kind}: cv must be >= 0, got {cv}")
        self.cv = float(cv)


class LogNormal(_WithCV):
    """Log-normal service with the given mean and coefficient of variation (a heavy-ish tail)."""

    kind = "lognormal"

    def _draw(self, mean: float, rng: np.random.Generator, size: int | None) -> float | np.ndarray:
        sigma2 = math.log1p(self.cv**2)
        return rng.lognormal(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2), size)


class Gamma(_WithCV):
    """Gamma service with the given mean and cv (cv < 1 is smoother than exponential)."""

    kind = "gamma"

    def __init__(self, mean_ms: float, cv: float, per_item_ms: float = 0.0) -> None:
        super().__init__(mean_ms, cv, per_item_ms)
        if self.cv == 0:
            raise ConfigError("gamma: cv must be > 0 (use deterministic for cv = 0)")

    def _draw(self, mean: float, rng: np.random.Generator, size: int | None) -> float | np.ndarray:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, mean / shape, size)


class Scaled:
    """``model`` run on hardware ``speed_factor`` times as fast as the profiling machine."""

    def __init__(self, model: ServiceTimeModel, speed_factor: float) -> None:
        if not (math.isfinite(speed_factor) and speed_factor > 0):
            raise ConfigError(f"speed_factor must be a positive number, got {speed_factor}")
        self.model = model
        self.speed_factor = float(speed_factor)

    def sample(
        self, batch_size: int, rng: np.random.Generator, size: int | None = None
    ) -> float | np.ndarray:
        return self.model.sample(batch_size, rng, size) / self.speed_factor

    def mean_s(self, batch_size: int) -> float:
        return self.model.mean_s(batch_size) / self.speed_factor

    def describe(self) -> dict[str, Any]:
        return {**describe_model(self.model), "speed_factor": self.speed_factor}


class EmpiricalServiceTime:
    """Measured service times per batch size; unprofiled sizes interpolate the quantiles.

    A draw for a profiled size ``b`` is one of its measured samples (a bootstrap draw). For
    ``b`` between profiled sizes ``b0 < b < b1`` the same uniform ``u`` picks the ``u``-quantile
    of both and mixes them linearly in ``b``, so the whole distribution (tail included) moves
    smoothly with the batch size. Outside the profiled range the two nearest sizes are
    extrapolated linearly (clipped at 0) and a warning is logged once.
    """

    def __init__(
        self, samples_ms: Mapping[int, Sequence[float] | np.ndarray], name: str = ""
    ) -> None:
        if not samples_ms:
            raise DataError(f"empirical service time {name!r}: no samples")
        sizes = sorted(int(b) for b in samples_ms)
        if sizes[0] < 1:
            raise DataError(f"empirical service time {name!r}: batch sizes must be >= 1")
        self.name = name
        self.sizes = np.array(sizes, dtype=np.int64)
        self._sorted_s: list[np.ndarray] = []
        for b in sizes:
            values = np.sort(np.asarray(samples_ms[b], dtype=np.float64)) / 1000.0
            if values.size == 0 or not np.all(np.isfinite(values)) or values[0] < 0:
                raise DataError(
                    f"empirical service time {name!r}, batch {b}: samples must be finite, "
                    "non-negative and non-empty"
                )
            self._sorted_s.append(values)
        self._means_s = np.array([v.mean() for v in self._sorted_s])
        self._warned: set[int] = set()

    @classmethod
    def from_table(
        cls, df: pd.DataFrame, stage: str | None = None, n_candidates: int | None = None
    ) -> EmpiricalServiceTime:
        """Build from a profile table (columns ``stage``, ``batch_size``, ``service_ms``).

        ``stage`` selects one stage (required when the table holds several); an
        ``n_candidates`` column is filtered to the given value, or must hold a single value.
        """
        missing = {"batch_size", "service_ms"} - set(df.columns)
        if missing:
            raise DataError(f"profile table lacks column(s) {sorted(missing)}")
        table = df
        if "stage" in table.columns:
            stages = sorted(table["stage"].astype(str).unique())
            if stage is None and len(stages) > 1:
                raise ConfigError(f"profile table holds stages {stages}; pass stage=")
            if stage is not None:
                if stage not in stages:
                    raise DataError(f"profile table has no stage {stage!r}; it has {stages}")
                table = table[table["stage"].astype(str) == stage]
        if "n_candidates" in table.columns:
            values = sorted(int(v) for v in table["n_candidates"].unique())
            if n_candidates is not None:
                table = table[table["n_candidates"] == n_candidates]
                if table.empty:
                    raise DataError(
                        f"profile has no rows with n_candidates={n_candidates}: {values}"
                    )
            elif len(values) > 1:
                raise ConfigError(f"profile holds n_candidates {values}; pass n_candidates=")
        if table.empty:
            raise DataError(f"profile table for stage {stage!r} is empty")
        service = pd.to_numeric(table["service_ms"], errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(service)) or (service < 0).any():
            raise DataError("profile column service_ms must be finite and non-negative")
        groups = pd.Series(service).groupby(table["batch_size"].astype(int).to_numpy())
        samples = {int(b): g.to_numpy() for b, g in groups}
        return cls(samples, name=stage or "")

    def _neighbours(self, b: int) -> tuple[int, int, float]:
        """Indices of the two sizes to mix and the weight of the second."""
        sizes = self.sizes
        j = int(np.searchsorted(sizes, b))
        if j < sizes.size and sizes[j] == b:
            return j, j, 0.0
        if sizes.size == 1:
            raise ConfigError(
                f"service profile {self.name!r} has only batch size {sizes[0]}; "
                f"cannot derive batch size {b} (profile more sizes or lower max_batch)"
            )
        if j in (0, sizes.size) and b not in self._warned:
            self._warned.add(b)
            log.warning(
                "service profile %r: batch size %d is outside the profiled %d..%d; extrapolating",
                self.name,
                b,
                sizes[0],
                sizes[-1],
            )
        lo = min(max(j - 1, 0), sizes.size - 2)
        return lo, lo + 1, (b - sizes[lo]) / (sizes[lo + 1] - sizes[lo])

    def sample(
        self, batch_size: int, rng: np.random.Generator, size: int | None = None
    ) -> float | np.ndarray:
        lo, hi, w = self._neighbours(_check_batch(batch_size))
        u = rng.random(size)
        x_lo = self._quantile(lo, u)
        x = x_lo if w == 0.0 else np.maximum((1.0 - w) * x_lo + w * self._quantile(hi, u), 0.0)
        return float(x) if size is None else np.asarray(x)

    def _quantile(self, j: int, u: float | np.ndarray) -> np.ndarray:
        values = self._sorted_s[j]
        idx = np.minimum((np.asarray(u) * values.size).astype(np.int64), values.size - 1)
        return values[idx]

    def mean_s(self, batch_size: int) -> float:
        lo, hi, w = self._neighbours(_check_batch(batch_size))
        return max(float((1.0 - w) * self._means_s[lo] + w * self._means_s[hi]), 0.0)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "empirical",
            "stage": self.name,
            "batch_sizes": self.sizes.tolist(),
            "samples": [int(v.size) for v in self._sorted_s],
            "mean_ms": {
                int(b): round(float(m) * 1000, 4)
                for b, m in zip(self.sizes, self._means_s, strict=True)
            },
        }


class WarmColdServiceTime:
    """Service times that depend on whether the worker was busy just before the batch.

    A worker that goes straight from one batch to the next (the batch was waiting for it)
    serves it **warm**: its thread is running and its caches hold the stage's data. A worker
    that sat idle serves **cold**: its thread must be woken and its data fetched again. A live
    Python server on this machine serves cold batches 20-100% slower than warm ones
    (``simulations/calibration.md``), so service speeds up as a queue builds: the reason a
    model with one distribution for both misplaces the knee of the latency curve.

    ``sample`` without a state draws cold (a worker's first batch is always cold); the
    engines that know the state (SimPy callbacks and the process-per-request reference) call
    :meth:`sample_state`. The compiled engine does not support it (``auto`` then picks SimPy).
    """

    state_dependent = True

    def __init__(self, warm: ServiceTimeModel, cold: ServiceTimeModel) -> None:
        self.warm = warm
        self.cold = cold

    def sample(
        self, batch_size: int, rng: np.random.Generator, size: int | None = None
    ) -> float | np.ndarray:
        return self.cold.sample(batch_size, rng, size)

    def sample_state(
        self, batch_size: int, warm: bool, rng: np.random.Generator, size: int | None = None
    ) -> float | np.ndarray:
        """Draws for a batch started warm (``warm=True``) or cold."""
        return (self.warm if warm else self.cold).sample(batch_size, rng, size)

    def mean_s(self, batch_size: int) -> float:
        return self.cold.mean_s(batch_size)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "warm_cold",
            "warm": describe_model(self.warm),
            "cold": describe_model(self.cold),
        }


def state_dependent(model: object) -> bool:
    """Whether ``model``'s service time depends on the worker's state (warm or cold)."""
    return bool(getattr(model, "state_dependent", False))


class BatchSampler:
    """Draws one stage's service times, in chunks, from one random stream per batch size.

    Batches of size ``b`` take their draws, in the order they start, from the ``b``-th child
    of the stage's seed sequence (``SeedSequence(entropy, spawn_key=(*stage_key, b))``), each
    stream drawn ``chunk`` values at a time. The draws for a batch size therefore do not
    depend on when other sizes occur, so every engine (SimPy callbacks, process-per-request,
    compiled) can pre-draw them and still give the same service time to the same batch, and
    a change of ``max_batch`` leaves the draws of the other sizes alone. A state-dependent
    model (:class:`WarmColdServiceTime`) has one stream per batch size and state.
    """

    def __init__(
        self, model: ServiceTimeModel, rng: np.random.Generator, chunk: int = 1024
    ) -> None:
        if chunk < 1:
            raise ConfigError(f"chunk must be >= 1, got {chunk}")
        self.model = model
        self.chunk = int(chunk)
        seq = getattr(rng.bit_generator, "seed_seq", None)
        if not isinstance(seq, np.random.SeedSequence):  # a generator built from raw state
            seq = np.random.SeedSequence(rng.integers(0, 2**63, size=4).tolist())
        self._seq = seq
        self.state_dependent = state_dependent(model)
        self._streams: dict[tuple[int, ...], np.random.Generator] = {}
        self._buffers: dict[tuple[int, ...], list[float]] = {}

    def _stream(self, key: tuple[int, ...]) -> np.random.Generator:
        rng = self._streams.get(key)
        if rng is None:
            seq = self._seq
            child = np.random.SeedSequence(
                seq.entropy, spawn_key=(*seq.spawn_key, *key), pool_size=seq.pool_size
            )
            rng = self._streams[key] = np.random.default_rng(child)
        return rng

    def _key(self, batch_size: int, warm: bool) -> tuple[int, ...]:
        # Stateless models keep their one stream per batch size (their draws are unchanged).
        return (batch_size, int(warm)) if self.state_dependent else (batch_size,)

    def draw_chunk(self, batch_size: int, warm: bool = False) -> np.ndarray:
        """The next ``chunk`` service times of batches of ``batch_size`` (seconds), started
        ``warm`` or cold (only state-dependent models tell them apart)."""
        rng = self._stream(self._key(batch_size, warm))
        if self.state_dependent:
            drawn = self.model.sample_state(batch_size, warm, rng, self.chunk)  # type: ignore[attr-defined]
        else:
            drawn = self.model.sample(batch_size, rng, self.chunk)
        draws = np.asarray(drawn, dtype=np.float64)
        if draws.shape != (self.chunk,):
            raise DataError(f"service model {self.model!r} returned shape {draws.shape}")
        if not np.all(np.isfinite(draws)) or draws.min() < 0:
            raise DataError(f"service model {self.model!r} drew a negative or NaN time")
        return draws

    def __call__(self, batch_size: int, warm: bool = False) -> float:
        key = self._key(batch_size, warm)
        buffer = self._buffers.get(key)
        if not buffer:
            buffer = self.draw_chunk(batch_size, warm)[::-1].tolist()
            self._buffers[key] = buffer
        return buffer.pop()

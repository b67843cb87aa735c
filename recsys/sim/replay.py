"""Replay recorded traffic, and record simulated traffic in the same format.

A trace is a CSV or Parquet file with one row per request and a timestamp column: unix seconds
or milliseconds (or us/ns), relative seconds, or ISO date-times (detected, or stated with
``time_unit``). Absolute times (date-times, or unix times after 1973) are shifted so the trace
starts at 0; relative seconds are kept as they are, so a recorded run replays exactly.

``record_arrivals`` writes ``timestamp_s`` (relative seconds, full float precision) and an
optional ``user_id``: the default columns of :class:`Replay`.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TIME_UNITS = ("auto", "s", "ms", "us", "ns", "datetime")
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
# Numeric times above this many seconds are unix epochs (1973 onwards), below it relative.
_EPOCH_THRESHOLD_S = 1e8


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file; DataError if missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"trace file not found: {path}")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            table = pd.read_parquet(path)
        elif ".csv" in name or name.endswith(".txt"):
            table = pd.read_csv(path)
        else:
            raise DataError(f"trace {path}: unknown format (use .csv or .parquet)")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"trace {path} is empty") from exc
    except (ValueError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"trace {path} could not be read: {exc}") from exc
    if table.empty:
        raise DataError(f"trace {path} has no rows")
    missing = [c for c in columns or () if c not in table.columns]
    if missing:
        raise DataError(f"trace {path} lacks column(s) {missing}; it has {list(table.columns)}")
    return table


def _numeric_seconds(values: np.ndarray, unit: str) -> tuple[np.ndarray, bool]:
    if unit == "auto":
        top = float(np.max(values))
        unit = "ns" if top > 1e17 else "us" if top > 1e14 else "ms" if top > 1e11 else "s"
    seconds = values * _UNIT_SECONDS[unit]
    return seconds, bool(seconds[0] > _EPOCH_THRESHOLD_S)


def parse_times(series: pd.Series, time_unit: str = "auto", where: str = "trace") -> np.ndarray:
    """Timestamps -> float64 seconds (absolute ones shifted to start at 0), validated."""
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"time_unit must be one of {TIME_UNITS}, got {time_unit!r}")
    missing = series.isna().to_numpy()
    if missing.any():
        raise DataError(f"{where}: missing/NaN timestamp at row {int(np.argmax(missing))}")
    if time_unit != "datetime" and pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError(
                f"{where}: non-finite timestamp at row {int(np.argmax(~np.isfinite(values)))}"
            )
        if (values < 0).any():
            raise DataError(f"{where}: negative timestamp at row {int(np.argmax(values < 0))}")
        seconds, absolute = _numeric_seconds(values, time_unit)
    else:
        if time_unit not in ("auto", "datetime"):
            raise DataError(f"{where}: time_unit={time_unit!r} but timestamps are not numeric")
        parsed = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
        bad = parsed.isna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{where}: unparsable timestamp {series.iloc[row]!r} at row {row}")
        ns = parsed.dt.tz_localize(None).astype("datetime64[ns]").to_numpy().astype(np.int64)
        seconds, absolute = (ns - ns[0]).astype(np.float64) / 1e9, False
    steps = np.diff(seconds)
    if (steps < 0).any():
        row = int(np.argmax(steps < 0)) + 1
        raise DataError(
            f"{where}: timestamps are not sorted (row {row} is earlier than row {row - 1}); "
            "sort the file or pass sort=True"
        )
    return seconds - seconds[0] if absolute else seconds


class Replay:
    """Arrivals replayed from a recorded trace.

    ``time_column`` holds the timestamps (``time_unit`` auto-detects s/ms/us/ns and date-times);
    ``user_column`` optionally carries user ids; ``columns`` maps extra names to file columns
    (``{"n_tokens": "ContextTokens"}``) kept by :meth:`load`. ``start``/``end`` cut a window
    (seconds from the trace start, or date-time strings for date-time traces); ``speedup``
    divides all times (2 halves the span); ``rate_multiplier`` thins (< 1) or superposes
    (> 1) the trace to scale its rate; ``loop`` repeats the trace to fill a longer horizon;
    ``sort`` sorts an unsorted file instead of refusing it.
    """

    def __init__(
        self,
        path: str | Path,
        time_column: str = "timestamp_s",
        time_unit: str = "auto",
        user_column: str | None = None,
        *,
        columns: Mapping[str, str] | None = None,
        speedup: float = 1.0,
        rate_multiplier: float = 1.0,
        start: float | str | None = None,
        end: float | str | None = None,
        loop: bool = False,
        sort: bool = False,
    ) -> None:
        if time_unit not in TIME_UNITS:
            raise ConfigError(f"replay time_unit must be one of {TIME_UNITS}, got {time_unit!r}")
        for name, value in (("speedup", speedup), ("rate_multiplier", rate_multiplier)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"replay {name} must be a positive number, got {value}")
        self.path = Path(path)
        self.time_column = time_column
        self.time_unit = time_unit
        self.user_column = user_column
        self.columns = dict(columns or {})
        self.speedup = float(speedup)
        self.rate_multiplier = float(rate_multiplier)
        self.start, self.end = start, end
        self.loop = bool(loop)
        self.sort = bool(sort)
        self._frame: pd.DataFrame | None = None

    def _window_bound(self, bound: float | str, raw: pd.Series) -> float:
        if not isinstance(bound, str):
            return float(bound)
        try:
            stamp = pd.to_datetime(pd.Series([bound, raw.iloc[0]]), format="ISO8601", utc=True)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"replay window bound {bound!r} is not a date-time") from exc
        return float((stamp.iloc[0] - stamp.iloc[1]).total_seconds())

    def load(self) -> pd.DataFrame:
        """The trace as ``arrival_s`` (+ ``user_id``, mapped columns); window, speedup applied."""
        if self._frame is not None:
            return self._frame
        wanted = [
            self.time_column,
            *([self.user_column] if self.user_column else []),
            *self.columns.values(),
        ]
        table = read_table(self.path, wanted)
        where = f"trace {self.path.name} column {self.time_column!r}"
        if self.sort:
            table = table.sort_values(self.time_column, kind="stable").reset_index(drop=True)
        seconds = parse_times(table[self.time_column], self.time_unit, where)
        frame = pd.DataFrame({"arrival_s": seconds})
        if self.user_column:
            frame["user_id"] = table[self.user_column].to_numpy()
        for name, column in self.columns.items():
            frame[name] = table[column].to_numpy()
        lo = (
            self._window_bound(self.start, table[self.time_column])
            if self.start is not None
            else None
        )
        hi = self._window_bound(self.end, table[self.time_column]) if self.end is not None else None
        if lo is not None:
            frame = frame[frame["arrival_s"] >= lo]
            frame["arrival_s"] -= lo
        if hi is not None:
            frame = frame[frame["arrival_s"] < hi - (lo or 0.0)]
        if frame.empty:
            raise DataError(
                f"trace {self.path.name}: no arrivals in the window [{self.start}, {self.end})"
            )
        frame["arrival_s"] /= self.speedup
        self._frame = frame.reset_index(drop=True)
        return self._frame

    def _period_s(self, times: np.ndarray) -> float:
        """Length of one loop: the window if stated in seconds, else the span plus a mean gap."""
        if (
            self.end is not None
            and not isinstance(self.end, str)
            and not isinstance(self.start, str)
        ):
            return (float(self.end) - float(self.start or 0.0)) / self.speedup
        gap = (times[-1] - times[0]) / (times.size - 1) if times.size > 1 else max(times[-1], 1.0)
        return float(times[-1] + max(gap, 1e-9))

    @property
    def mean_rate_qps(self) -> float:
        times = self.load()["arrival_s"].to_numpy()
        return self.rate_multiplier * times.size / self._period_s(times)

    def arrivals(
        self,
        rng: np.random.Generator,
        duration_s: float | None = None,
        n_requests: int | None = None,
    ) -> np.ndarray:
        """The trace's arrival times (looped, thinned or superposed as configured)."""
        from recsys.sim.workload import check_horizon, cut

        check_horizon(duration_s, n_requests, required=False)
        base = self.load()["arrival_s"].to_numpy(np.float64)
        period = self._period_s(base)
        copies = 1
        if self.loop:
            need_t = duration_s / period if duration_s is not None else 0.0
            need_n = (
                n_requests / (base.size * self.rate_multiplier) if n_requests is not None else 0.0
            )
            copies = max(1, math.ceil(max(need_t, need_n * 1.2 + 1.0)))
        times = np.concatenate([base + k * period for k in range(copies)])
        times = self._scale_rate(times, rng)
        out = cut(times, duration_s, n_requests)
        if n_requests is not None and out.size < n_requests:
            raise ConfigError(
                f"trace {self.path.name} yields {out.size} arrivals, n_requests={n_requests} "
                "asked; set loop=true or ask for fewer"
            )
        if (
            duration_s is not None
            and not self.loop
            and times.size
            and times[-1] < duration_s * 0.99
        ):
            log.warning(
                "trace %s ends at %.1f s, before duration_s=%.1f",
                self.path.name,
                times[-1],
                duration_s,
            )
        return out

    def _scale_rate(self, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Thin (keep each arrival with probability m) or superpose jittered copies (m > 1)."""
        m = self.rate_multiplier
        if m == 1.0 or times.size == 0:
            return times
        whole, frac = int(m), m - int(m)
        gap = (times[-1] - times[0]) / max(times.size - 1, 1)
        parts = [times] if whole >= 1 else []
        for _ in range(1, whole):
            parts.append(np.maximum(times + rng.uniform(-gap / 2, gap / 2, times.size), 0.0))
        if frac > 0:
            keep = rng.random(times.size) < frac
            extra = times[keep]
            if whole >= 1:
                extra = np.maximum(extra + rng.uniform(-gap / 2, gap / 2, extra.size), 0.0)
            parts.append(extra)
        return np.sort(np.concatenate(parts))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "replay",
            "path": str(self.path),
            "time_column": self.time_column,
            "speedup": self.speedup,
            "rate_multiplier": self.rate_multiplier,
            "start": self.start,
            "end": self.end,
            "loop": self.loop,
        }


def record_arrivals(
    path: str | Path,
    arrivals: np.ndarray | Sequence[float],
    users: np.ndarray | Sequence[Any] | None = None,
) -> Path:
    """Write arrivals (seconds) as a trace :class:`Replay` reads back exactly (CSV or Parquet).

    The write is atomic: a temporary file in the same folder, then a rename.
    """
    path = Path(path)
    times = np.asarray(arrivals, dtype=np.float64)
    if times.ndim != 1 or not np.all(np.isfinite(times)) or (np.diff(times) < 0).any():
        raise DataError("arrivals to record must be a sorted 1-d array of finite seconds")
    frame = pd.DataFrame({"timestamp_s": times})
    if users is not None:
        users = np.asarray(users)
        if users.shape != times.shape:
            raise DataError(f"users has {users.size} entries for {times.size} arrivals")
        frame["user_id"] = users
    name = path.name.lower()
    if not name.endswith((".csv", ".parquet", ".pq")):
        raise ConfigError(f"record path must end in .csv or .parquet, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if name.endswith(".csv"):
            frame.to_csv(tmp, index=False, float_format="%.17g")
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path

"""Your own interactions from a CSV or Parquet file, with every bad row named or counted.

Ids may be strings or integers (densified by :func:`~recsys.data.interactions.from_raw`).
Timestamps may be unix seconds, milliseconds (micro-, nanoseconds), date strings or a Parquet
timestamp column; ``time_unit="auto"`` tells numbers from dates and seconds from milliseconds
by magnitude. Bad rows (missing ids, missing or unparsable timestamps, missing, non-numeric or
negative weights) raise a :class:`DataError` naming the first of them, or with
``on_invalid="drop"`` are removed and counted in a logged warning. Duplicate rows are kept:
repeated interactions are data.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from recsys.data.interactions import Interactions, from_raw
from recsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TIME_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
SECONDS_PER_UNIT = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
ISO_HINT = "use ISO 8601 (2024-01-31 18:00:00) or unix seconds, or set time_unit"


COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")


def _stem(path: Path) -> str:
    """The file name without its compression and format suffixes (``a.b.csv.gz`` -> ``a.b``)."""
    name = path.name
    for suffixes in (COMPRESSION_SUFFIXES, CSV_SUFFIXES + PARQUET_SUFFIXES):
        for suffix in suffixes:
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
    return name


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    base = next((s for s in reversed(suffixes) if s not in COMPRESSION_SUFFIXES), "")
    if base in PARQUET_SUFFIXES:
        return "parquet"
    if base in CSV_SUFFIXES:
        return "csv"
    raise DataError(
        f"{path}: unsupported file type {''.join(path.suffixes) or '(no suffix)'}; "
        f"expected one of {CSV_SUFFIXES + PARQUET_SUFFIXES} (optionally compressed CSV)"
    )


def _columns(path: Path, kind: str) -> list[str]:
    """The column names of the file, read without loading the data."""
    try:
        if kind == "parquet":
            return list(pq.read_schema(path).names)
        sep = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
        return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: the file is empty (no header, no rows)") from err
    except (OSError, ValueError, UnicodeError) as err:
        raise DataError(f"{path}: cannot be read as {kind} ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _read(path: Path, kind: str, columns: list[str]) -> pd.DataFrame:
    try:
        if kind == "parquet":
            return pd.read_parquet(path, columns=columns)
        sep = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
        return pd.read_csv(path, sep=sep, usecols=columns)
    except (OSError, ValueError, UnicodeError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot be read as {kind} ({_first_line(err)})") from err


def _numeric_unit(seconds_like: np.ndarray) -> str:
    """Seconds, milliseconds, micro- or nanoseconds, judged by the median magnitude."""
    finite = np.abs(seconds_like[np.isfinite(seconds_like)])
    median = float(np.median(finite)) if finite.size else 0.0
    # 1e11 s is the year 5138 while 1e11 ms is 1973: the scales do not overlap in practice.
    for unit, bound in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if median < bound:
            return unit
    return "ns"


def _dates_to_seconds(values: pd.Series, fmt: str | None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format": we report NaT
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format=fmt)
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(1, "s")
    return np.asarray(seconds, dtype=np.float64)


def _to_seconds(values: pd.Series, unit: str, where: str) -> tuple[np.ndarray, str]:
    """Unix seconds (NaN where missing or unparsable) and what the values were read as."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return _dates_to_seconds(values, None), "datetime"
    is_number = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if unit == "iso":
        if is_number:
            raise DataError(f"{where} holds numbers, not dates: set time_unit to 's' or 'ms'")
        return _dates_to_seconds(values, "ISO8601"), "iso"
    numbers = np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
    if unit == "auto" and not is_number:
        present = int(values.notna().sum())
        if np.isfinite(numbers).sum() * 2 < present:  # mostly not numbers: dates
            seconds = _dates_to_seconds(values, "ISO8601")
            if np.isnan(seconds).sum() > values.isna().sum():
                seconds = _dates_to_seconds(values, "mixed")
            return seconds, "dates"
    if unit == "auto":
        unit = _numeric_unit(numbers)
    return numbers * SECONDS_PER_UNIT[unit], unit


def _example(values: pd.Series, mask: np.ndarray) -> str:
    first = int(np.flatnonzero(mask)[0])
    return f"first at data row {first + 1}: {values.iloc[first]!r}"


def _problems(
    frame: pd.DataFrame,
    cols: dict[str, str | None],
    seconds: np.ndarray,
    weights: np.ndarray | None,
) -> list[tuple[str, str, np.ndarray]]:
    """``(column, reason, bad-row mask)`` for every kind of bad row that occurs."""
    user, item, time, weight = cols["user"], cols["item"], cols["time"], cols["weight"]
    missing_time = frame[time].isna().to_numpy()
    problems = [
        (user, "a missing user id", frame[user].isna().to_numpy()),
        (item, "a missing item id", frame[item].isna().to_numpy()),
        (time, "a missing timestamp", missing_time),
        (time, f"a non-numeric or unparsable timestamp ({ISO_HINT})",
         ~np.isfinite(seconds) & ~missing_time),
    ]  # fmt: skip
    if weight is not None and weights is not None:
        missing_weight = frame[weight].isna().to_numpy()
        problems += [
            (weight, "a missing weight", missing_weight),
            (weight, "a non-numeric weight", ~np.isfinite(weights) & ~missing_weight),
            (weight, "a negative weight", weights < 0),
        ]
    return [(str(col), reason, mask) for col, reason, mask in problems if mask.any()]


def _ids(values: pd.Series) -> np.ndarray:
    """Raw ids; whole-number floats (an int column that had gaps) go back to int64."""
    arr = values.to_numpy()
    if arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
        return arr.astype(np.int64)
    return arr


def load_interactions(
    path: str | Path,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str = "timestamp",
    weight_col: str | None = None,
    *,
    time_unit: str = "auto",
    name: str | None = None,
    on_invalid: str = "raise",
) -> Interactions:
    """Interactions from a CSV (``.csv``, ``.tsv``, compressed) or Parquet file.

    ``time_unit`` is ``"auto"``, ``"s"``, ``"ms"``, ``"us"``, ``"ns"`` or ``"iso"``; dates
    without a zone are read as UTC. Without ``weight_col`` every weight is 1. ``on_invalid``
    is ``"raise"`` (a :class:`DataError` naming the first bad row) or ``"drop"`` (bad rows
    removed, the count per reason logged as a warning). ``name`` defaults to the file stem.
    """
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"time_unit must be one of {TIME_UNITS}, got {time_unit!r}")
    if on_invalid not in ("raise", "drop"):
        raise ConfigError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"interactions file {path} does not exist")
    kind = _kind(path)
    available = _columns(path, kind)
    cols = {"user": user_col, "item": item_col, "time": time_col, "weight": weight_col}
    wanted = list(dict.fromkeys(c for c in cols.values() if c is not None))
    for role, col in cols.items():
        if col is not None and col not in available:
            raise DataError(
                f"{path}: no {role} column {col!r} (set {role}_col); available columns: {available}"
            )
    frame = _read(path, kind, wanted)
    if frame.empty:
        raise DataError(f"{path}: has a header but no data rows")
    seconds, read_as = _to_seconds(frame[time_col], time_unit, f"{path}: column {time_col!r}")
    log.debug("%s: timestamps read as %s", path, read_as)
    weights = None
    if weight_col is not None:
        weights = np.asarray(pd.to_numeric(frame[weight_col], errors="coerce"), np.float64)
    problems = _problems(frame, cols, seconds, weights)
    if problems and on_invalid == "raise":
        col, reason, mask = problems[0]
        raise DataError(
            f"{path}: {int(mask.sum())} rows have {reason} in column {col!r} "
            f"({_example(frame[col], mask)}); fix the file or pass on_invalid='drop'"
        )
    bad = np.zeros(len(frame), dtype=bool)
    for _, _, mask in problems:
        bad |= mask
    if bad.any():
        counts = {f"{col}: {reason.split(' (')[0]}": int(m.sum()) for col, reason, m in problems}
        log.warning("%s: dropped %d of %d rows %s", path, int(bad.sum()), len(frame), counts)
        if bad.all():
            raise DataError(f"{path}: every row is invalid {counts}")
    keep = ~bad
    return from_raw(
        _ids(frame[user_col][keep]),
        _ids(frame[item_col][keep]),
        seconds[keep],
        None if weights is None else weights[keep],
        name=name or _stem(path),
    )

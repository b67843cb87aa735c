"""Timing harness: warm up, then time each batch size many times and keep every sample.

The output is a long table (one row per timed call) with columns ``stage``, ``kind``,
``batch_size``, ``n_candidates`` and ``service_ms``. The simulator reads it as an empirical
distribution per stage and batch size, so the tails it replays are the measured tails.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsys.errors import ConfigError
from recsys.pipeline import StageCall

PROFILE_COLUMNS = ("stage", "kind", "batch_size", "n_candidates", "service_ms")


def _check(batch_sizes: Sequence[int], repeats: int, warmup: int) -> None:
    if not batch_sizes or any(int(b) <= 0 for b in batch_sizes):
        raise ConfigError(f"profile.batch_sizes must be positive integers, got {list(batch_sizes)}")
    if repeats <= 0:
        raise ConfigError(f"profile.repeats must be positive, got {repeats}")
    if warmup < 0:
        raise ConfigError(f"profile.warmup must be >= 0, got {warmup}")


def profile_stage(
    call: StageCall,
    batch_sizes: Sequence[int],
    repeats: int = 30,
    warmup: int = 3,
    seed: int = 0,
    n_inputs: int = 8,
    progress: bool = True,
) -> pd.DataFrame:
    """Time ``call.run`` ``repeats`` times per batch size; return one row per timed call.

    ``n_candidates`` is the candidates each request brings into the stage (``call.n_in``).
    Inputs are drawn up front (``n_inputs`` distinct ones per batch size, used round-robin) so
    input construction never lands inside the timed region, while still varying the users.
    """
    _check(batch_sizes, repeats, warmup)
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, int, int, float]] = []
    bar = tqdm(
        total=len(batch_sizes) * repeats,
        desc=f"profile {call.name}",
        disable=not progress,
        leave=False,
    )
    for batch_size in sorted({int(b) for b in batch_sizes}):
        inputs = [call.make_input(batch_size, rng) for _ in range(min(n_inputs, repeats))]
        for i in range(warmup):
            call.run(inputs[i % len(inputs)])
        for i in range(repeats):
            batch = inputs[i % len(inputs)]
            start = time.perf_counter_ns()
            call.run(batch)
            elapsed_ms = (time.perf_counter_ns() - start) / 1e6
            rows.append((call.name, call.kind, batch_size, call.n_in, elapsed_ms))
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))


def profile_stages(
    calls: Sequence[StageCall],
    batch_sizes: Sequence[int],
    repeats: int = 30,
    warmup: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Profile every stage of a pipeline; one long table."""
    frames = [
        profile_stage(c, batch_sizes, repeats, warmup, seed + i, progress=progress)
        for i, c in enumerate(calls)
    ]
    return pd.concat(frames, ignore_index=True)


def summarize_profile(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, p50, p99 and per-request mean of each (stage, batch size), for reports."""
    grouped = table.groupby(["stage", "batch_size"])["service_ms"]
    out = grouped.agg(
        mean_ms="mean",
        p50_ms=lambda s: float(np.percentile(s, 50)),
        p99_ms=lambda s: float(np.percentile(s, 99)),
        samples="size",
    ).reset_index()
    out["per_request_ms"] = out["mean_ms"] / out["batch_size"]
    return out

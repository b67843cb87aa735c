"""How steady this machine is while it measures (other processes show up as latency)."""

from __future__ import annotations

import time

import numpy as np


def machine_noise(repeats: int = 400, work_ms: float = 0.5) -> dict[str, float]:
    """How steady this machine is: a fixed CPU task timed ``repeats`` times (p50, p99 in ms).

    On a quiet machine p99/p50 stays near 1; other processes competing for the cores show as
    a long tail here and in every measurement of the load test.
    """
    x = np.linspace(0.0, 1.0, 4096)
    once = []
    for _ in range(21):
        start = time.perf_counter()
        np.sin(x).sum()
        once.append(time.perf_counter() - start)
    rounds = max(1, round(work_ms / 1000.0 / max(float(np.median(once)), 1e-7)))
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            np.sin(x).sum()
        times[i] = time.perf_counter() - start
    p50, p99 = np.percentile(times * 1000.0, [50, 99])
    return {
        "task_p50_ms": float(p50),
        "task_p99_ms": float(p99),
        "p99_over_p50": float(p99 / p50),
    }

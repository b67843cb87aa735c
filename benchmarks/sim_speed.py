"""Simulator speed: requests simulated per wall second, one core, three engines, same model.

    .venv/bin/python benchmarks/sim_speed.py            # prints a JSON dict of rates

The model is the two-stage pipeline the product plans: retrieval and ranking replica pools
with dynamic batching (``max_batch``, ``max_wait_ms``), a network hop, Poisson arrivals at
2,800 QPS (10 million requests is one hour of it). Each engine runs the same arrivals and
seed; the fastest of ``--repeats`` runs counts (the machine is shared; the spread is kept).
``naive`` is one SimPy process per request (:mod:`recsys.sim.naive`), ``simpy`` the callback
engine, ``fast`` the compiled one. The M/M/4 queue of DEPENDENCIES.md is measured too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys.sim.engine import StageSpec, simulate
from recsys.sim.service import Exponential, LogNormal
from recsys.sim.workload import Poisson

QPS = 2800.0


def pipeline() -> list[StageSpec]:
    """Two stages with dynamic batching (about 60% busy at 2,800 QPS)."""
    return [
        StageSpec("retrieval", LogNormal(1.5, 0.5, per_item_ms=0.25), replicas=3,
                  max_batch=8, max_wait_ms=1.0),
        StageSpec("ranking", LogNormal(4.0, 0.6, per_item_ms=0.5), replicas=5,
                  max_batch=16, max_wait_ms=2.0, network_ms=0.5),
    ]  # fmt: skip


def mm4() -> list[StageSpec]:
    """M/M/4 at 80% busy (1.14 ms mean service at 2,800 QPS)."""
    return [StageSpec("queue", Exponential(4 * 0.8 / QPS * 1000.0), replicas=4)]


def arrivals(n: int, seed: int = 0) -> np.ndarray:
    return Poisson(QPS).arrivals(np.random.default_rng(seed), n_requests=n)


def pin_one_core() -> int | None:
    """Run this process on one CPU (the benchmark's '1 core'); returns it."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def rate(run: Callable[[], Any], n: int, repeats: int) -> dict[str, Any]:
    """Best (and median) requests per wall second and per CPU second over ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "rps": n / min(walls),
        "rps_median": n / float(np.median(walls)),
        "rps_cpu": n / min(cpus),
        "wall_s": walls,
        "n": n,
    }


def identical_records(n: int = 20_000) -> bool:
    """Whether the three engines give the same per-request records on the benchmark model."""
    times = arrivals(n, seed=1)
    frames = [
        simulate(times, pipeline(), seed=3, engine=e).records for e in ("simpy", "naive", "fast")
    ]
    try:
        for other in frames[1:]:
            pd.testing.assert_frame_equal(frames[0], other, rtol=0, atol=1e-12)
    except AssertionError:
        return False
    return True


def measure(n_naive: int, n_simpy: int, n_fast: int, repeats: int) -> dict[str, Any]:
    """All speed numbers, keyed as in bench.json."""
    out: dict[str, Any] = {"sim.cpu": pin_one_core()}
    simulate(arrivals(100), pipeline(), engine="fast")  # load the compiled kernel once
    for name, model in (("", pipeline), ("mm4.", mm4)):
        small, mid, big = arrivals(n_naive), arrivals(n_simpy), arrivals(n_fast)
        runs = {
            "naive_simpy": (
                small,
                lambda t=small, m=model: simulate(t, m(), record=False, engine="naive"),
            ),
            "simpy": (mid, lambda t=mid, m=model: simulate(t, m(), record=False, engine="simpy")),
            "fast": (big, lambda t=big, m=model: simulate(t, m(), record=False, engine="fast")),
        }
        for key, (times, run) in runs.items():
            result = rate(run, times.size, repeats)
            out[f"sim.{name}{key}_rps"] = result["rps"]
            out[f"sim.{name}{key}_detail"] = result
            print(f"  {name}{key}: {result['rps']:,.0f} req/s (n={times.size})", flush=True)
        out[f"sim.{name}simpy_speedup_vs_naive"] = (
            out[f"sim.{name}simpy_rps"] / out[f"sim.{name}naive_simpy_rps"]
        )
        out[f"sim.{name}fast_speedup_vs_simpy"] = (
            out[f"sim.{name}fast_rps"] / out[f"sim.{name}simpy_rps"]
        )
    big = arrivals(min(n_fast, 1_000_000))
    result = rate(lambda: simulate(big, pipeline(), engine="fast"), big.size, repeats)
    out["sim.fast_records_rps"] = result["rps"]  # with per-request records (a DataFrame)
    check = simulate(arrivals(200_000), pipeline(), record=False, engine="fast")
    out["sim.model"] = {
        "qps": QPS,
        "stages": [s.describe() for s in pipeline()],
        "utilization": [st.utilization for st in check.stages],
        "mean_batch": [st.mean_batch for st in check.stages],
        "p99_ms": check.latency_ms["p99"],
    }
    out["sim.identical_records"] = identical_records()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-naive", type=int, default=100_000)
    parser.add_argument("--n-simpy", type=int, default=300_000)
    parser.add_argument("--n-fast", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.n_naive, args.n_simpy, args.n_fast, args.repeats), indent=1))


if __name__ == "__main__":
    main()

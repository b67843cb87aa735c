"""Peak memory of a long streaming run: 10M requests, ``record=False``, default engine.

    .venv/bin/python benchmarks/sim_memory.py --requests 10000000

Meant to run as its own process (``benchmarks/run.py`` starts it and reads the child's peak
resident memory from ``os.wait4``); it prints one JSON line with its own view as well: the
resident memory after imports, after drawing the arrivals, and at its peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args()

    import numpy as np

    from benchmarks.sim_speed import QPS, pipeline
    from recsys.sim.engine import simulate
    from recsys.sim.workload import Poisson

    simulate(np.arange(100) / QPS, pipeline(), record=False, engine=args.engine)  # load kernel
    after_imports = _rss_mb()
    arrivals = Poisson(QPS).arrivals(np.random.default_rng(0), n_requests=args.requests)
    after_arrivals = _rss_mb()
    start = time.perf_counter()
    result = simulate(arrivals, pipeline(), record=False, engine=args.engine)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "requests": args.requests,
                "engine": result.info.engine,
                "wall_s": wall,
                "rss_mb_after_imports": after_imports,
                "rss_mb_after_arrivals": after_arrivals,
                "arrivals_mb": arrivals.nbytes / 2**20,
                "peak_rss_mb_self": peak,
                "p99_ms": result.latency_ms["p99"],
                "completed": result.completed,
            }
        )
    )


if __name__ == "__main__":
    main()

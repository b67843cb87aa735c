"""Wall time of a real 48-configuration Hydra sweep on synthetic data.

    .venv/bin/python benchmarks/sweep_grid48.py --out /tmp/bench/sweep

4 retrieval x 4 ranking x 3 traffic levels of ``recsys-sim -m experiment=smoke`` (tiny
synthetic data: each job trains, evaluates, profiles the real stages, plans replicas by
simulation and writes ``result.json``), two jobs at a time with the joblib launcher
(``hydra/launcher=joblib2``) when it is configured, with a fresh artifact cache
(``RECSYS_CACHE_DIR``) so the traffic levels of a pairing reuse its trained stages. Writes
``sweep.json``: wall time, jobs that wrote a result, failures, and where the jobs' own time
went (from each ``result.json``'s ``run.duration_s`` and the jobs' logs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RETRIEVAL = ("exact", "hnsw", "ivf", "ivfpq")
RANKING = ("lightgbm", "lightgbm_small", "popularity", "none")
QPS = (500, 1000, 2000)


def command(
    out: Path,
    launcher: str | None,
    extra: list[str],
    grid: tuple[Sequence[str], Sequence[str], Sequence[int]] = (RETRIEVAL, RANKING, QPS),
) -> list[str]:
    retrieval, ranking, qps = grid
    exe = Path(sys.executable).with_name("recsys-sim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "recsys.cli.sim"]
    cmd += [
        "-m",
        "experiment=smoke",
        f"retrieval={','.join(retrieval)}",
        f"ranking={','.join(ranking)}",
        f"traffic.peak_qps={','.join(str(q) for q in qps)}",
        "progress=false",
        "write_records=false",
        f"hydra.sweep.dir={out / 'multirun'}",
    ]
    if launcher:
        cmd.append(f"hydra/launcher={launcher}")
    return cmd + extra


def default_launcher() -> str | None:
    return "joblib2" if (ROOT / "conf/hydra/launcher/joblib2.yaml").exists() else None


def run_sweep(
    out: Path,
    launcher: str | None,
    cache: Path | None,
    extra: list[str],
    grid: tuple[Sequence[str], Sequence[str], Sequence[int]] = (RETRIEVAL, RANKING, QPS),
) -> dict[str, Any]:
    """Run the sweep once from a clean output directory; summarise what it produced."""
    if (out / "multirun").exists():
        shutil.rmtree(out / "multirun")
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    cache = cache or out / "cache"
    env["RECSYS_CACHE_DIR"] = str(cache)
    cmd = command(out, launcher, extra, grid)
    start = time.perf_counter()
    with open(out / "sweep.log", "w") as log:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    wall = time.perf_counter() - start
    results = sorted((out / "multirun").glob("*/result.json"))
    durations = []
    for path in results:
        doc = json.loads(path.read_text())
        durations.append(float(doc.get("run", {}).get("duration_s", float("nan"))))
    jobs = len(grid[0]) * len(grid[1]) * len(grid[2])
    return {
        "command": " ".join(cmd),
        "launcher": launcher or "basic",
        "cache_dir": str(cache),
        "returncode": proc.returncode,
        "wall_s": wall,
        "jobs": jobs,
        "results": len(results),
        "failed": jobs - len(results),
        "job_duration_s_sum": sum(durations),
        "job_duration_s_max": max(durations, default=float("nan")),
        "job_duration_s_min": min(durations, default=float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--launcher", default=default_launcher(), help="hydra/launcher option or ''"
    )
    parser.add_argument("--cache", type=Path, default=None, help="default: OUT/cache (fresh)")
    parser.add_argument("--keep-cache", action="store_true", help="do not empty the cache first")
    parser.add_argument("--retrieval", default=",".join(RETRIEVAL))
    parser.add_argument("--ranking", default=",".join(RANKING))
    parser.add_argument("--qps", default=",".join(str(q) for q in QPS))
    parser.add_argument("extra", nargs="*", help="more Hydra overrides")
    args = parser.parse_args()
    cache = args.cache or args.out / "cache"
    if cache.exists() and not args.keep_cache:
        shutil.rmtree(cache)
    grid = (
        args.retrieval.split(","),
        args.ranking.split(","),
        [int(q) for q in args.qps.split(",")],
    )
    summary = run_sweep(args.out, args.launcher or None, cache, args.extra, grid)
    (args.out / "sweep.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

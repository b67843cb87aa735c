"""Calibration benchmark: simulated vs measured latency for two pairings at four load levels.

    .venv/bin/python benchmarks/calibration.py            # 15-30 minutes on 2 cores
    .venv/bin/python benchmarks/calibration.py --quick    # smaller runs, about 3 minutes
    .venv/bin/python benchmarks/calibration.py -- loadtest.switch_interval_ms=0.5  # overrides
    # an earlier run's measurement against other model settings (about 10 minutes, no load test)
    .venv/bin/python benchmarks/calibration.py --reanalyse outputs/calibration \
        --out outputs/calibration_b100 -- loadtest.calibration.warp_block_windows=100

Runs ``recsys-loadtest experiment=calibrate`` (hnsw + lightgbm and ivf + mlp on tiny synthetic
data, 1 replica x 1 worker per stage, levels 30/50/70/85% of the measured capacity) into
``--out``, then prints and writes ``<out>/calibration_table.md``: per pairing and level, the
end-to-end error of the calibrated and of the stand-alone-profile simulation, and whether the
targets (|err p50| <= 5%, |err p99| <= 10% up to 70%) are met. Run it on a quiet machine:
other processes competing for the cores show up as latency the simulator cannot know about
(the report prints how steady the machine was).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUICK = [
    "loadtest.calibration.n_requests=1500",
    "loadtest.calibration.warmup_requests=150",
    "loadtest.calibration.probe_requests=800",
    "loadtest.calibration.capacity_requests=1000",
]


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}%"


def table(doc: dict[str, Any]) -> str:
    """Markdown: one row per pairing and level (end to end)."""
    m = doc["machine"]
    lines = [
        f"Machine steadiness: fixed CPU task p99/p50 {m['p99_over_p50']:.2f} before, "
        f"{m.get('after', {}).get('p99_over_p50', float('nan')):.2f} after.",
        "",
        "| pairing | util | QPS | real p50 ms | real p99 ms | calibrated err p50 | err p99 | "
        "profiled err p50 | err p99 | repeat err p50 | err p99 | generator lag p99 ms | "
        "status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in doc["levels"]:
        if r["stage"] != "end_to_end":
            continue
        prof = r.get("profiled", {})
        cal = r.get("calibrated", {})
        rep = r.get("repeat", {})
        lines.append(
            f"| {r['pairing']} | {100 * r['utilization']:.0f}% | {r['target_qps']:.0f} | "
            f"{r['real_p50_ms']:.3f} | {r['real_p99_ms']:.3f} | {_pct(cal.get('err_p50'))} | "
            f"{_pct(cal.get('err_p99'))} | {_pct(prof.get('err_p50'))} | "
            f"{_pct(prof.get('err_p99'))} | {_pct(rep.get('err_p50'))} | "
            f"{_pct(rep.get('err_p99'))} | {r['generator_lag_p99_ms']:.3f} | {r['status']} |"
        )
    lines.append("")
    for p in doc["pairings"]:
        if "measured_qps" in p:
            lines.append(
                f"- {p['name']}: capacity {p['measured_qps']:.0f} QPS sustained "
                f"({p.get('burst_qps', float('nan')):.0f} in a burst) before the "
                f"levels, {p.get('measured_after_qps', float('nan')):.0f} after; "
                f"{p['profile_qps']:.0f} from the profile"
            )
    for name, verdict in doc["targets"]["verdict"].items():
        failed = ", ".join(f"{100 * u:.0f}%" for u in verdict["failed_levels"])
        noisy = ", ".join(f"{100 * u:.0f}%" for u in verdict.get("noise_limited_levels", []))
        lines.append(
            f"- {name}: targets {'met' if verdict['met'] else 'NOT met'}"
            + (f" (failed at {failed})" if failed else "")
            + (f"; the run's two halves disagree beyond the tolerance at {noisy}" if noisy else "")
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/calibration"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/recsys"))
    parser.add_argument("--quick", action="store_true", help="smaller runs per level")
    parser.add_argument(
        "--reanalyse",
        type=Path,
        help="an earlier run's --out: analyse its saved load tests again (no load test)",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (after --)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    env = dict(os.environ, RECSYS_CACHE_DIR=str(args.cache.resolve()), OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "recsys.cli.loadtest",
        "experiment=calibrate",
        f"hydra.run.dir={out}",
        "progress=false",
        *(QUICK if args.quick else []),
        *([f"loadtest.calibration.reanalyse={args.reanalyse.resolve()}"] if args.reanalyse else []),
        *args.overrides,
    ]
    print("running:", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, check=False)
    if proc.returncode != 0:
        return proc.returncode
    doc = json.loads((out / "calibration.json").read_text())
    text = table(doc)
    (out / "calibration_table.md").write_text(text)
    print(f"\n{text}\n{time.perf_counter() - started:.0f} s; report: {out / 'calibration.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

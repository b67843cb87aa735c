"""The speed benchmarks of the simulator and the sweep, in one command.

    .venv/bin/python benchmarks/run.py --out /tmp/bench          # about 6-10 minutes here
    .venv/bin/python benchmarks/run.py --out /tmp/bench --quick  # smaller runs, no sweep

Writes ``OUT/bench.json`` (flat dotted keys) and ``OUT/bench.md``:

- ``sim.naive_simpy_rps`` / ``sim.simpy_rps`` / ``sim.fast_rps``: requests simulated per wall
  second on one core (this process is pinned to one CPU) by the process-per-request SimPy
  model, the SimPy callback engine and the compiled engine, on the same two-stage pipeline
  with dynamic batching (:mod:`benchmarks.sim_speed`); ``sim.mm4.*`` the same for an M/M/4
  queue. Best of ``--repeats``; medians and CPU-time rates are kept beside them.
- ``memory.rss_mb_10m``: peak resident memory of a separate process simulating 10M requests
  with ``record=False`` (:mod:`benchmarks.sim_memory`), read from ``os.wait4``.
- ``sweep.grid48_s``: wall time of the 48-configuration Hydra sweep
  (:mod:`benchmarks.sweep_grid48`) on both cores.

The machine is shared: ``meta.loadavg_*`` records the load before and after, so numbers from
a busy machine can be read as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {  # key: (bound, "min" | "max", what the issue asks)
    "sim.simpy_speedup_vs_naive": (2.0, "min", "SimPy engine >= 2x process-per-request"),
    "sim.fast_rps": (5e6, "min", "compiled engine >= 5M requests/s, 1 core"),
    "memory.rss_mb_10m": (500.0, "max", "10M-request streaming run < 500 MB resident"),
    "sweep.grid48_s": (300.0, "max", "48-configuration sweep < 5 minutes, 2 cores"),
}


def machine() -> str:
    """CPU model, cores and Python, e.g. for comparing runs from different hosts."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def memory(requests: int) -> dict[str, Any]:
    """Peak RSS of a child process running the streaming simulation."""
    cmd = [sys.executable, str(ROOT / "benchmarks/sim_memory.py"), "--requests", str(requests)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with {proc.returncode}")
    child = json.loads(output.strip().splitlines()[-1])
    return {
        "memory.rss_mb_10m"
        if requests == 10_000_000
        else f"memory.rss_mb_{requests}": usage.ru_maxrss / 1024.0,
        "memory.detail": child | {"command": " ".join(cmd)},
    }


def sweep(out: Path) -> dict[str, Any]:
    from benchmarks.sweep_grid48 import default_launcher, run_sweep

    cache = out / "sweep" / "cache"
    if cache.exists():  # cold: every pairing trains once, its traffic levels reuse it
        shutil.rmtree(cache)
    summary = run_sweep(out / "sweep", default_launcher(), cache, [])
    return {"sweep.grid48_s": summary["wall_s"], "sweep.detail": summary}


def verdicts(bench: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, (bound, kind, text) in TARGETS.items():
        value = bench.get(key)
        met = None if value is None else (value >= bound if kind == "min" else value <= bound)
        out[key] = {"value": value, "target": bound, "kind": kind, "what": text, "met": met}
    return out


def markdown(bench: dict[str, Any]) -> str:
    lines = [
        "# recsys benchmarks",
        "",
        f"`{bench['meta.command']}` on {bench['meta.machine']}, "
        f"load average {bench['meta.loadavg_before']} before, {bench['meta.loadavg_after']} after "
        f"({bench['meta.cpus']} CPUs), {bench['meta.wall_s']:.0f} s in all.",
        "",
        "| target | value | bound | met |",
        "|---|---:|---:|---|",
    ]
    for key, v in bench["targets"].items():
        value = "-" if v["value"] is None else f"{v['value']:,.1f}"
        met = {True: "yes", False: "**no**", None: "not run"}[v["met"]]
        lines.append(
            f"| {v['what']} (`{key}`) | {value} | {v['kind']} {v['target']:,.0f} | {met} |"
        )
    lines += ["", "| key | value |", "|---|---:|"]
    for key, value in bench.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            lines.append(f"| `{key}` | {value:,.2f} |")
        elif isinstance(value, bool):
            lines.append(f"| `{key}` | {value} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="small runs; skip the sweep")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bench: dict[str, Any] = {
        "meta.command": " ".join([Path(sys.executable).name, *sys.argv]),
        "meta.machine": machine(),
        "meta.cpus": os.cpu_count(),
        "meta.loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "meta.started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    # Compile (or load) the kernel here, so that no measured process pays for compiling it.
    from recsys.sim.engine import StageSpec, simulate
    from recsys.sim.service import Exponential

    simulate([0.0, 0.001], [StageSpec("warm", Exponential(1.0))], engine="fast")
    # Memory first: it must not inherit anything, and it needs no pinning.
    print("memory: 10M requests, record=False ...", flush=True)
    bench |= memory(1_000_000 if args.quick else 10_000_000)
    if not args.skip_sweep and not args.quick:
        print("sweep: 48 configurations ...", flush=True)
        bench |= sweep(args.out)
    print("speed (one core) ...", flush=True)
    from benchmarks.sim_speed import measure

    sizes = (20_000, 50_000, 1_000_000) if args.quick else (100_000, 300_000, 10_000_000)
    bench |= measure(*sizes, repeats=args.repeats)
    bench["meta.loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    bench["meta.wall_s"] = time.perf_counter() - start
    bench["targets"] = verdicts(bench)
    (args.out / "bench.json").write_text(json.dumps(bench, indent=1, default=str))
    (args.out / "bench.md").write_text(markdown(bench))
    print((args.out / "bench.md").read_text())


if __name__ == "__main__":
    main()

"""``calibration.json``, ``calibration.md`` and the CDF overlays of a calibration run."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsys.loadtest.calibrate import PairingResult
from recsys.loadtest.compare import END_TO_END
from recsys.result import jsonable

SCHEMA_VERSION = 1
REQUIRED_LEVEL_KEYS = (
    "pairing",
    "utilization",
    "stage",
    "sim_p50_ms",
    "real_p50_ms",
    "sim_p99_ms",
    "real_p99_ms",
)


def calibration_doc(
    results: Sequence[PairingResult],
    *,
    run: Mapping[str, Any],
    machine: Mapping[str, Any],
    settings: Mapping[str, Any],
    targets: Mapping[str, float],
) -> dict[str, Any]:
    """The ``calibration.json`` document: ``levels`` (one row per pairing, level and stage)."""
    rows = [row for r in results for row in r.rows()]
    verdict = targets_met(
        rows,
        p50_tol=float(targets["p50"]),
        p99_tol=float(targets["p99"]),
        max_utilization=float(targets["max_utilization"]),
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "run": dict(run),
        "machine": dict(machine),
        "settings": dict(settings),
        "targets": {**targets, "verdict": verdict},
        "pairings": [
            {
                "name": r.name,
                "stages": r.stages,
                "capacity_qps": r.capacity_qps,
                **r.capacity,
                "serving": r.serving,
            }
            for r in results
        ],
        "levels": rows,
    }


def targets_met(
    rows: Sequence[Mapping[str, Any]],
    p50_tol: float = 0.05,
    p99_tol: float = 0.10,
    max_utilization: float = 0.70,
) -> dict[str, Any]:
    """Per pairing: are end-to-end p50/p99 errors within tolerance at levels up to
    ``max_utilization``? Levels whose load test was not valid count as not met."""
    out: dict[str, Any] = {}
    for pairing in dict.fromkeys(r["pairing"] for r in rows):
        checked = [
            r
            for r in rows
            if r["pairing"] == pairing
            and r["stage"] == END_TO_END
            and r["utilization"] <= max_utilization + 1e-9
        ]
        fails = [
            r["utilization"]
            for r in checked
            if r["status"] != "ok"
            or not abs(r["err_p50"]) <= p50_tol
            or not abs(r["err_p99"]) <= p99_tol
        ]
        # A failed level where the two real halves of the run (``repeat``) already disagree
        # by more than the tolerance cannot show the simulator within it at this run length.
        noisy = [
            r["utilization"]
            for r in checked
            if r["utilization"] in fails
            and r.get("repeat")
            and not (
                abs(r["repeat"]["err_p50"]) <= p50_tol and abs(r["repeat"]["err_p99"]) <= p99_tol
            )
        ]
        out[pairing] = {
            "met": bool(checked) and not fails,
            "failed_levels": fails,
            "noise_limited_levels": noisy,
        }
    return out


def to_json(doc: Mapping[str, Any]) -> str:
    """``doc`` as indented JSON (NaN written as null)."""
    return json.dumps(jsonable(doc), indent=2) + "\n"


def check_calibration(doc: Mapping[str, Any]) -> None:
    """``ValueError`` unless ``doc`` has ``levels`` rows with the documented keys."""
    levels = doc.get("levels")
    if not isinstance(levels, list) or not levels:
        raise ValueError("calibration.json needs a non-empty list 'levels'")
    for i, row in enumerate(levels):
        missing = [k for k in REQUIRED_LEVEL_KEYS if k not in row]
        if missing:
            raise ValueError(f"calibration.json levels[{i}] lacks {missing}")


# -- markdown -------------------------------------------------------------------------------


def _ms(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:+.1f}%"


def _ci(row: Mapping[str, Any], key: str) -> str:
    ci = row.get(f"real_{key}_ci_ms")
    if not ci or ci[0] is None or not all(math.isfinite(v) for v in ci):
        return ""
    return f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _level_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| util | stage | real p50 | sim p50 | err | real p95 | sim p95 | err | "
        "real p99 [95% CI] | sim p99 | err | profiled err p50 / p99 | "
        "repeat err p50 / p99 | status |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        prof, rep = r.get("profiled", {}), r.get("repeat", {})
        status = r["status"]
        if status != "ok":
            status = f"**{status}** (lag p99 {_ms(r['generator_lag_p99_ms'])} ms)"
        lines.append(
            f"| {100 * r['utilization']:.0f}% | {r['stage']} | {_ms(r['real_p50_ms'])} | "
            f"{_ms(r['sim_p50_ms'])} | {_pct(r['err_p50'])} | {_ms(r['real_p95_ms'])} | "
            f"{_ms(r['sim_p95_ms'])} | {_pct(r['err_p95'])} | "
            f"{_ms(r['real_p99_ms'])}{_ci(r, 'p99')} | "
            f"{_ms(r['sim_p99_ms'])} | {_pct(r['err_p99'])} | "
            f"{_pct(prof.get('err_p50'))} / {_pct(prof.get('err_p99'))} | "
            f"{_pct(rep.get('err_p50'))} / {_pct(rep.get('err_p99'))} | {status} |"
        )
    return lines


def _noise_line(verdict: Mapping[str, Any]) -> list[str]:
    noisy = verdict.get("noise_limited_levels") or []
    if not noisy:
        return []
    levels = ", ".join(f"{100 * u:.0f}%" for u in noisy)
    return [
        "",
        f"At {levels} the run's own two halves (*repeat err*: the interleaved probe requests "
        "against the measured ones, same machine, same minutes) already disagree by more "
        "than the tolerance: at this run length the measurement cannot show any model "
        "within it there (more requests per level narrow it).",
    ]


def _diagnostic_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| util | stage | service b=1 p50: profiled / in server (its CPU time) | "
        "dispatch p50 / p99 | warm starts | calibrated: warm / cold b=1 mean, contention | "
        "mean batch real / sim | busy workers (real) | generator lag p50 / p99 |",
        "|---:|---|---|---|---:|---|---|---:|---|",
    ]
    for r in rows:
        d = r.get("diagnostics")
        if d is None:
            continue
        c = r.get("calibrated_inputs") or {}
        calibrated = (
            f"{_ms(c.get('warm_b1_mean_ms'))} / {_ms(c.get('cold_b1_mean_ms'))}, "
            f"{_num(c.get('contention'))}"
            if c
            else "n/a"
        )
        lines.append(
            f"| {100 * r['utilization']:.0f}% | {r['stage']} | "
            f"{_ms(d['profiled_service_b1_p50_ms'])} / {_ms(d['real_service_b1_p50_ms'])} "
            f"({_ms(d.get('real_cpu_b1_p50_ms'))}) | "
            f"{_ms(d['real_dispatch_p50_ms'])} / {_ms(d['real_dispatch_p99_ms'])} | "
            f"{_pct_plain(d.get('real_warm_fraction'))} | {calibrated} | "
            f"{_num(d['real_mean_batch'])} / {_num(d['sim_mean_batch'])} | "
            f"{_num(d.get('real_busy_fraction'))} | "
            f"{_ms(r['generator_lag_p50_ms'])} / {_ms(r['generator_lag_p99_ms'])} |"
        )
    return lines


def _drift_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per level, how much the machine's speed drifted during the probe (replayed in time by
    the calibrated simulations)."""
    lines = []
    for r in rows:
        inputs = (r.get("calibrated_inputs") or {}) if r["stage"] == END_TO_END else {}
        d, w = inputs.get("drift"), inputs.get("warp")
        if d:
            lines.append(
                f"- {100 * r['utilization']:.0f}%: machine drift in {d['window_ms']:.0f} ms "
                f"windows: cv {_pct_plain(d['cv'])} (raw {_pct_plain(d['raw_cv'])}, of which "
                f"sampling noise {_pct_plain(d['noise_share'])} of the variance)"
            )
        if w:
            lines.append(
                f"- {100 * r['utilization']:.0f}%: slow spells of the whole process in "
                f"{w['window_ms']:.0f} ms windows: {_pct_plain(w['slow_share'])} of them at "
                f"half speed or worse, p99 factor {_num(w['p99'])}, worst {_num(w['max'])}"
            )
    return [*lines, ""] if lines else []


def _tail_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per level, how the measured and simulated p99 tails cluster in time."""
    lines = []
    for r in rows:
        tail = r.get("tail") if r["stage"] == END_TO_END else None
        if not tail:
            continue
        real, sim = tail["real"], tail.get(r.get("model", "calibrated"), {})
        lines.append(
            f"- {100 * r['utilization']:.0f}%: the measured p99 tail is {real['episodes']} "
            f"slow spells, the 4 largest hold {_pct_plain(real['largest4_share'])} of it "
            f"(simulated, {r.get('model', '')}: {sim.get('episodes', 'n/a')}, "
            f"{_pct_plain(sim.get('largest4_share'))})"
        )
    return [*lines, ""] if lines else []


def _pct_plain(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def _num(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def render_markdown(doc: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The human-readable calibration report."""
    t = doc["targets"]
    m = doc["machine"]
    s = doc["settings"]
    out = [
        "# Calibration: simulated vs measured latency",
        "",
        f"Run {doc['run'].get('started_at', '')}; seed {doc['run'].get('seed')}. "
        f"Each level: a probe load test ({s.get('probe_requests')} requests) gives the "
        "**calibrated** model (each stage's in-server hold time per batch, warm and cold "
        "apart, with the slowdown from co-located batches fitted and taken out; the machine's "
        "speed drift in time and the slow spells of the whole process (receiver and workers "
        "together), taken out and replayed on block-bootstrapped paths; the "
        "ingress and hand-off delays), then the measured load test "
        f"({s.get('n_requests')} requests, first {s.get('warmup_requests')} left out) is "
        "simulated on exactly its arrivals with the calibrated model (columns *sim*) and "
        "with the stages' stand-alone profile (*profiled err*: what recsys-sim predicts). "
        f"Generator: {s.get('generator', 'thread')}. Errors are (sim - real) / real. "
        f"Threads per library: {s.get('n_threads')}; Python switch interval "
        f"{s.get('switch_interval_ms')} ms; no network (one process). Simulated percentiles "
        f"pool {s.get('sim_replications')} simulations of the same arrivals; the interval "
        "after a measured p99 is its batch-means 95% CI (the measurement's own noise).",
        "",
        f"**Machine steadiness**: a fixed {m.get('task_p50_ms', math.nan):.2f} ms CPU task took "
        f"p99 {m.get('task_p99_ms', math.nan):.2f} ms (p99/p50 "
        f"{m.get('p99_over_p50', math.nan):.2f}) before the runs"
        + (f" and p99/p50 {m['after']['p99_over_p50']:.2f} after them" if "after" in m else "")
        + ". Well above 1, other processes compete for the cores and every percentile below "
        "carries that noise.",
        "",
        f"**Targets** (end to end, utilisation up to {100 * t['max_utilization']:.0f}%): "
        f"|err p50| <= {100 * t['p50']:.0f}%, |err p99| <= {100 * t['p99']:.0f}%.",
        "",
    ]
    for p in doc["pairings"]:
        name = p["name"]
        rows = [r for r in doc["levels"] if r["pairing"] == name]
        verdict = t["verdict"].get(name, {})
        met = "met" if verdict.get("met") else "NOT met"
        failed = verdict.get("failed_levels") or []
        measured = p.get("measured_qps")
        after = p.get("measured_after_qps")
        burst = p.get("burst_qps")
        cap = (
            f"measured {measured:.0f} QPS sustained"
            + (f" ({burst:.0f} QPS in a burst)" if burst else "")
            + (f" before the levels and {after:.0f} QPS after them" if after else "")
            + f", profile says {p['profile_qps']:.0f} QPS (bottleneck {p['profile_bottleneck']})"
            if measured is not None
            else f"{p['profile_qps']:.0f} QPS from the profile (bottleneck "
            f"{p['profile_bottleneck']})"
        )
        out += [
            f"## {name}",
            "",
            f"Stages {', '.join(p['stages'])}; capacity {cap}; levels are fractions of "
            f"{p['capacity_qps']:.0f} QPS. Targets **{met}**"
            + (f" (failed at {', '.join(f'{100 * u:.0f}%' for u in failed)})" if failed else "")
            + ".",
            *_noise_line(verdict),
            "",
            *_level_table(rows),
            "",
            "Inside the stages (what the simulator's inputs miss):",
            "",
            *_diagnostic_table(rows),
            "",
            *_drift_lines(rows),
            *_tail_lines(rows),
        ]
        if name in plots:
            out += [f"![CDF overlays of {name}]({plots[name]})", ""]
        bad = [r for r in rows if r["stage"] == END_TO_END and r["status"] != "ok"]
        for r in bad:
            out.append(
                f"- {100 * r['utilization']:.0f}%: {r['status']}: the measurement is not valid "
                "latency (see `status` in calibration.json)."
            )
        if bad:
            out.append("")
    return "\n".join(out)


# -- plots ----------------------------------------------------------------------------------


def plot_cdfs(result: PairingResult, path: Path) -> Path:
    """One panel per (stage or end to end, level): real vs simulated latency CDFs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = [*result.stages, END_TO_END]
    cols = result.levels
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(3.2 * len(cols), 2.6 * len(rows)), squeeze=False
    )
    styles = {"profiled": ("tab:orange", ":"), "calibrated": ("tab:blue", "--")}
    for j, level in enumerate(cols):
        for i, stage in enumerate(rows):
            ax = axes[i][j]
            _cdf(ax, level.real[stage], "measured", "black", "-")
            for model, samples in level.sim.items():
                color, style = styles.get(model, ("tab:green", "-."))
                _cdf(ax, samples[stage], f"sim ({model})", color, style)
            ax.set_xscale("log")
            # Ticks at 1 and 3 of each decade, as plain numbers: over less than a decade the
            # default labels every minor tick in scientific notation and they overlap.
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(f"{stage} @ {100 * level.utilization:.0f}%", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(rows) - 1:
                ax.set_xlabel("latency (ms)")
            if j == 0:
                ax.set_ylabel("CDF")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{result.name}: simulated vs measured", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _cdf(ax: Any, samples: np.ndarray, label: str, color: str, style: str) -> None:
    values = np.sort(samples[np.isfinite(samples) & (samples > 0)])
    if values.size == 0:
        return
    ax.plot(values, np.arange(1, values.size + 1) / values.size, style, color=color, label=label)

"""The comparison report's figures, drawn with matplotlib's Agg canvas (no pyplot, no display).

Each ``plot_*`` returns a :class:`~matplotlib.figure.Figure` (or None when there is nothing
to draw); :func:`write_plots` saves them as PNG files. Plots that draw one line per run
(latency CDFs, time series, stage bars) show a selection: the recommended run, the baseline,
the Pareto frontier, then the cheapest others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recsys.report.aggregate import Run
from recsys.report.recommend import COST, QUALITY, Recommendation

PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
PLOT_NAMES = ("pareto_quality_cost", "p99_cost", "latency_cdf", "stage_breakdown", "timeseries")
PASS, FAIL, CHOSEN, BASE = "#2a9d8f", "#b0b0b0", "#e76f51", "#264653"


@dataclass(frozen=True)
class Plot:
    """A saved figure: file, title and a one-line caption for the report."""

    name: str
    path: Path
    title: str
    caption: str


def _safe(text: str, limit: int = 48, keep_end: bool = False) -> str:
    """Labels as plain text (``$`` would start matplotlib mathtext), shortened to ``limit``
    characters (keeping the end for run paths, whose last part tells them apart)."""
    if len(text) > limit:
        text = "…" + text[1 - limit :] if keep_end else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def highlight(runs: Sequence[Run], rec: Recommendation, limit: int) -> list[Run]:
    """Chosen, baseline, Pareto frontier, then the cheapest others; at most ``limit``."""
    by_name = {r.name: r for r in runs}
    first = [r for r in (rec.chosen, rec.closest, rec.baseline) if r is not None]
    order = first + [by_name[n] for n in rec.front if n in by_name]
    order += sorted(runs, key=lambda r: (r[COST] if math.isfinite(r[COST]) else math.inf, r.name))
    seen: dict[str, Run] = {}
    for run in order:
        if run.name not in seen:
            seen[run.name] = run
    return list(seen.values())[:limit]


def _log_if_wide(ax: Axes, values: Sequence[float], axis: str) -> None:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _scatter(ax: Axes, runs: Sequence[Run], rec: Recommendation, y: str) -> None:
    passed = set(rec.passing)
    for group, color, text in ((True, PASS, "passes the gate"), (False, FAIL, "fails the gate")):
        pts = [r for r in runs if (r.name in passed) == group]
        if pts:
            ax.scatter(
                [r[COST] for r in pts],
                [r[y] for r in pts],
                c=color,
                s=36,
                label=text,
                zorder=3,
                edgecolors="white",
                linewidths=0.5,
            )
    if rec.baseline is not None:
        b = rec.baseline
        ax.scatter(
            [b[COST]],
            [b[y]],
            marker="s",
            s=110,
            facecolors="none",
            edgecolors=BASE,
            linewidths=2,
            label=f"baseline: {_safe(b.label, 30)}",
            zorder=4,
        )
    if rec.chosen is not None:
        c = rec.chosen
        ax.scatter(
            [c[COST]],
            [c[y]],
            marker="*",
            s=320,
            c=CHOSEN,
            edgecolors="black",
            linewidths=0.6,
            label=f"recommended: {_safe(c.label, 30)}",
            zorder=5,
        )
    if rec.closest is not None:
        c = rec.closest
        ax.scatter(
            [c[COST]],
            [c[y]],
            marker="*",
            s=320,
            facecolors="none",
            edgecolors=CHOSEN,
            linewidths=1.5,
            label=f"closest to passing: {_safe(c.label, 30)}",
            zorder=5,
        )
    _log_if_wide(ax, [r[COST] for r in runs], "x")
    ax.set_xlabel("cost per 1k requests (USD)")
    ax.grid(alpha=0.3)


def _annotate(ax: Axes, runs: Sequence[Run], y: str, limit: int = 12) -> None:
    """Label up to ``limit`` points; labels in the right half of the axes go to the left."""
    ax.autoscale_view()
    to_axes = ax.transData + ax.transAxes.inverted()
    at: dict[tuple[float, float], list[Run]] = {}  # runs drawn on the same spot share a label
    for run in runs[:limit]:
        if math.isfinite(run[COST]) and math.isfinite(run[y]):
            at.setdefault((run[COST], run[y]), []).append(run)
    for (cost, value), same in at.items():
        more = f" (+{len(same) - 1} more)" if len(same) > 1 else ""
        right = to_axes.transform((cost, value))[0] > 0.6
        ax.annotate(
            _safe(same[0].label, 44) + more,
            (cost, value),
            textcoords="offset points",
            xytext=(-8 if right else 8, 5),
            ha="right" if right else "left",
            fontsize=7,
            color="#333333",
        )


def plot_quality_cost(runs: Sequence[Run], rec: Recommendation) -> Figure:
    """NDCG@10 against cost per 1k requests, with the Pareto frontier as a step line."""
    fig, (ax,) = _figure(9, 5.5)
    front = sorted((r for r in runs if r.name in rec.front), key=lambda r: r[COST])
    if front:
        ax.step(
            [r[COST] for r in front],
            [r[QUALITY] for r in front],
            where="post",
            color=CHOSEN,
            alpha=0.5,
            lw=1.5,
            label="Pareto frontier",
            zorder=2,
        )
    _scatter(ax, runs, rec, QUALITY)
    _annotate(ax, highlight(runs, rec, 12), QUALITY)
    ax.set_ylabel("NDCG@10 (offline, test split)")
    ax.set_title("Quality vs cost: up and to the left is better")
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_p99_cost(runs: Sequence[Run], rec: Recommendation, sla_ms: float | None) -> Figure:
    """End-to-end p99 at peak against cost per 1k requests, with the SLA line."""
    fig, (ax,) = _figure(9, 5.5)
    if sla_ms is not None and math.isfinite(sla_ms):
        ax.axhline(sla_ms, color="#c0392b", ls="--", lw=1.2, label=f"p99 SLA {sla_ms:g} ms")
    _scatter(ax, runs, rec, "p99_ms")
    _log_if_wide(ax, [r["p99_ms"] for r in runs], "y")
    _annotate(ax, highlight(runs, rec, 12), "p99_ms")
    ax.set_ylabel("p99 end-to-end latency at peak (ms, simulated)")
    ax.set_title("Tail latency vs cost: down and to the left is better")
    ax.legend(fontsize=8, loc="best")
    return fig


def latency_samples(run: Run) -> np.ndarray | None:
    """End-to-end latencies (ms) of the measured, completed requests in ``records.parquet``."""
    path = run.dir / "records.parquet"
    if not path.is_file():
        return None
    try:
        names = set(pq.read_schema(path).names)
        if "e2e_ms" not in names:
            return None
        cols = [c for c in ("e2e_ms", "outcome", "arrival_s") if c in names]
        frame = pd.read_parquet(path, columns=cols)
    except (OSError, ValueError):
        return None
    keep = np.isfinite(frame["e2e_ms"].to_numpy(dtype=float))
    if "outcome" in frame:
        keep &= (frame["outcome"].astype(str) == "ok").to_numpy()
    warmup = ((run.result.get("simulation") or {}).get("sim") or {}).get("warmup_s")
    if "arrival_s" in frame and isinstance(warmup, int | float):
        keep &= frame["arrival_s"].to_numpy(dtype=float) >= warmup
    values = frame["e2e_ms"].to_numpy(dtype=float)[keep]
    return values if values.size else None


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF on a grid dense in the tail (at most about 800 points)."""
    n = values.size
    probs = np.unique(
        np.concatenate([np.linspace(0, 0.9, 200), 1 - np.logspace(-1, -math.log10(n), 600)])
    )
    probs = probs[(probs >= 0) & (probs <= 1 - 1 / n)]
    return np.quantile(values, probs), probs


def plot_latency_cdf(runs: Sequence[Run]) -> Figure:
    """CDF and tail (1 - CDF, log scale) of end-to-end latency, from records or percentiles."""
    fig, axes = _figure(11, 5, ncols=2)
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        name = f"{_safe(run.label, 36)} ({_safe(run.name, 24, keep_end=True)}"
        values = latency_samples(run)
        if values is not None:
            x, p = _ecdf(values)
            style: dict[str, Any] = {
                "color": color,
                "lw": 1.4,
                "label": f"{name})",
            }
        else:
            pts = [
                (float(run.result["latency_ms"][k]), q)
                for k, q in PERCENTILES
                if isinstance(run.result["latency_ms"].get(k), int | float)
            ]
            if not pts:
                continue
            x, p = np.array([a for a, _ in pts]), np.array([b for _, b in pts])
            style = {
                "color": color,
                "lw": 1,
                "ls": "--",
                "marker": "o",
                "ms": 4,
                "label": f"{name}, percentiles only)",
            }
        axes[0].plot(x, p, **style)
        axes[1].plot(x, 1 - p, **style)
    axes[0].set_ylabel("fraction of requests answered within x")
    axes[0].set_title("Latency CDF (completed requests)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("fraction slower than x (1 - CDF)")
    axes[1].set_title("Tail")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("end-to-end latency (ms)")
        ax.grid(alpha=0.3, which="both")
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8
    )
    return fig


def _stage_names(runs: Sequence[Run]) -> list[str]:
    names: dict[str, None] = {}
    for run in runs:
        for s in run.result["stages"]:
            names.setdefault(str(s["name"]), None)
    return list(names)


def plot_stage_breakdown(runs: Sequence[Run]) -> Figure:
    """Stacked bars per run: each stage's p50 latency (wait + service) and monthly cost."""
    stages = _stage_names(runs)
    fig, axes = _figure(12, 1.6 + 0.42 * len(runs), ncols=2)
    ticks = [f"{_safe(r.label, 40)} ({_safe(r.name, 20, keep_end=True)})" for r in runs]
    y = np.arange(len(runs))
    left_ms, left_usd = np.zeros(len(runs)), np.zeros(len(runs))
    for i, stage in enumerate(stages):
        ms, usd = np.zeros(len(runs)), np.zeros(len(runs))
        for j, run in enumerate(runs):
            for s in run.result["stages"]:
                if s["name"] == stage:
                    value = (s.get("latency_ms") or {}).get("p50")
                    ms[j] = value if isinstance(value, int | float) else 0.0
            for c in run.result["cost"].get("stages") or []:
                if c.get("stage") == stage and isinstance(c.get("monthly_usd"), int | float):
                    usd[j] = c["monthly_usd"]
        axes[0].barh(y, ms, left=left_ms, color=f"C{i}", label=stage)
        axes[1].barh(y, usd, left=left_usd, color=f"C{i}", label=stage)
        left_ms += ms
        left_usd += usd
    axes[0].set_yticks(y, ticks, fontsize=8)
    axes[1].set_yticks(y, [""] * len(runs))
    axes[0].set_xlabel("p50 latency per stage (ms, wait + service)")
    axes[1].set_xlabel("monthly instance cost per stage (USD)")
    for ax in axes:
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    axes[1].legend(fontsize=8, loc="lower right")
    return fig


def read_timeseries(run: Run) -> pd.DataFrame | None:
    """``timeseries.csv`` of a run, if present and readable."""
    path = run.dir / "timeseries.csv"
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return frame if len(frame) else None


def _timeseries_panels(frame: pd.DataFrame) -> dict[str, list[str]]:
    numeric = [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    panels = {
        "requests per second": [c for c in numeric if c == "qps"]
        or [c for c in numeric if "qps" in c],
        "latency (ms)": [c for c in numeric if c.endswith("_ms") and c.startswith("p")],
        "replicas": [c for c in numeric if c.endswith("replicas")],
        "queue length": [c for c in numeric if "queue" in c],
    }
    return {k: v for k, v in panels.items() if v}


def _minutes(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    for col, scale in (("t_s", 60.0), ("time_s", 60.0), ("minute", 1.0), ("t_min", 1.0)):
        if col in frame and pd.api.types.is_numeric_dtype(frame[col]):
            return frame[col].to_numpy(dtype=float) / scale, "minutes since start"
    return np.arange(len(frame), dtype=float), "time bin"


def plot_timeseries(runs: Sequence[Run]) -> Figure | None:
    """Per-bin QPS, latency, replicas and queue length of the runs that wrote a time series."""
    series = [(r, f) for r in runs if (f := read_timeseries(r)) is not None]
    panels: dict[str, None] = {}
    for _, frame in series:
        for name in _timeseries_panels(frame):
            panels.setdefault(name, None)
    if not panels:
        return None
    fig = Figure(figsize=(11, 2.4 * len(panels) + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    xlabel = "time bin"
    for i, (run, frame) in enumerate(series):
        x, xlabel = _minutes(frame)
        found = _timeseries_panels(frame)
        for ax, panel in zip(axes, panels, strict=True):
            for k, col in enumerate(found.get(panel, [])):
                ax.plot(
                    x,
                    frame[col].to_numpy(dtype=float),
                    color=f"C{i % 10}",
                    ls=("-", "--", ":", "-.")[k % 4],
                    lw=1.2,
                    label=f"{_safe(run.name, 24, keep_end=True)}: {col}",
                )
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_ylabel(panel)
        ax.grid(alpha=0.3)
        ax.margins(y=0.12)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xlabel(xlabel)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100)
    tmp.replace(path)
    return path


def write_plots(
    runs: Sequence[Run], rec: Recommendation, out: Path, sla_ms: float | None
) -> list[Plot]:
    """Draw every figure that has data and save it as ``out/<name>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    if not runs:
        for name in PLOT_NAMES:
            (out / f"{name}.png").unlink(missing_ok=True)
        return []
    selected = highlight(runs, rec, 8)
    with_series = [
        r for r in highlight(runs, rec, len(runs)) if (r.dir / "timeseries.csv").is_file()
    ]
    figures = [
        (
            "pareto_quality_cost",
            "Quality vs cost",
            "NDCG@10 against cost per 1k requests; "
            "the line is the Pareto frontier, the star the recommendation.",
            plot_quality_cost(runs, rec),
        ),
        (
            "p99_cost",
            "p99 latency vs cost",
            "Simulated end-to-end p99 at peak against cost "
            "per 1k requests; the dashed line is the SLA.",
            plot_p99_cost(runs, rec, sla_ms),
        ),
        (
            "latency_cdf",
            "Latency distribution",
            "From each run's records.parquet where present; "
            "dashed lines join the reported percentiles otherwise.",
            plot_latency_cdf(selected),
        ),
        (
            "stage_breakdown",
            "Per-stage latency and cost",
            "Stacked per stage: p50 latency (wait + service) and monthly instance cost.",
            plot_stage_breakdown(highlight(runs, rec, 25)),
        ),
        (
            "timeseries",
            "Traffic over time",
            "Per-bin values from each run's timeseries.csv.",
            plot_timeseries(with_series[:6]),
        ),
    ]
    plots = []
    for name, title, caption, fig in figures:
        if fig is None:  # nothing to draw: do not leave an older run's figure behind
            (out / f"{name}.png").unlink(missing_ok=True)
        else:
            plots.append(Plot(name, _save(fig, out / f"{name}.png"), title, caption))
    return plots

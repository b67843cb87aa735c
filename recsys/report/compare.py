"""The comparison report across runs: collect, gate, recommend, then write every output.

``compare(dirs, policy)`` reads every run below ``dirs`` and picks a pairing;
``write_report(comparison, out)`` writes ``results.csv``, ``report.md``, ``report.html`` and
the figures (PNG) into ``out``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from recsys.gate import Policy
from recsys.report.aggregate import collect_runs
from recsys.report.html import render_html
from recsys.report.plots import Plot, write_plots
from recsys.report.recommend import recommend
from recsys.report.run_report import md_table
from recsys.report.tables import (
    Comparison,
    Table,
    comparison_table,
    cost_assumption_table,
    failed_table,
    gate_table,
    hardware_table,
    policy_lines,
    results_frame,
)
from recsys.result import atomic_write_text

__all__ = ["Comparison", "compare", "render_markdown", "sla_ms", "write_report"]


def compare(
    dirs: Iterable[str | Path],
    policy: Policy,
    baseline: str | Mapping[str, Any] | None = None,
) -> Comparison:
    """Collect the runs below ``dirs``, find the baseline (``baseline`` or the policy's) and
    recommend a pairing. ``DataError``/``ConfigError`` on bad directories or selectors."""
    runs = collect_runs(dirs)
    selector = baseline if baseline is not None else policy.baseline
    base = runs.find(selector) if selector is not None and len(runs) else None
    return Comparison(runs, policy, recommend(runs.runs, policy, base))


def sla_ms(comparison: Comparison) -> float | None:
    """The p99 bound to draw: the policy's ``latency_ms.p99 <=`` value, else the runs' SLA."""
    for c in comparison.policy.constraints:
        if c.metric == "latency_ms.p99" and c.relative_to is None and c.op in ("<=", "<"):
            return float(c.value)  # type: ignore[arg-type]
    slas = {r["sla_p99_ms"] for r in comparison.runs if math.isfinite(r["sla_p99_ms"])}
    return slas.pop() if len(slas) == 1 else None


def _md(data: Table) -> str:
    header, rows = data
    return md_table(header, rows) if rows else "none"


def render_markdown(comparison: Comparison, plots: Sequence[Plot]) -> str:
    """``report.md``: the same content as the HTML page, figures as relative PNG links."""
    runs, rec = comparison.runs, comparison.recommendation
    if rec.chosen is not None:
        headline = f"## Recommendation: {rec.chosen.label} (`{rec.chosen.name}`)"
    else:
        headline = "## Recommendation: none (no run meets every constraint)"
    parts = [
        "# recsys comparison report",
        f"{len(runs)} usable run(s), {len(runs.failed)} failed or incomplete, from "
        + ", ".join(f"`{s}`" for s in runs.sources)
        + f"; policy `{comparison.policy.name}`.",
        headline,
        "\n".join(f"- {r}" for r in rec.reasons),
    ]
    if rec.notes:
        parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in rec.notes))
    parts += [
        "## Comparison",
        "Quality is offline (test split); latency is simulated at each run's peak QPS; cost is "
        "instances only unless marked TCO.",
        _md(comparison_table(comparison)),
        "## Figures",
        *(f"![{p.title}]({p.path.name})\n\n*{p.title}.* {p.caption}" for p in plots),
        "## Gate",
        f"Policy `{comparison.policy.name}`:\n\n"
        + "\n".join(f"- {line}" for line in policy_lines(comparison)),
        _md(gate_table(comparison)),
        "## Failed or incomplete runs",
        _md(failed_table(comparison)),
        "## Assumptions (not measured here)",
        "### Hardware prices",
        _md(hardware_table(comparison)),
        "### Cost assumptions",
        _md(cost_assumption_table(comparison)),
    ]
    return "\n\n".join(parts) + "\n"


def write_report(comparison: Comparison, out: str | Path) -> dict[str, Path]:
    """Write ``results.csv``, the figures, ``report.md`` and ``report.html`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"results.csv": out / "results.csv"}
    atomic_write_text(files["results.csv"], results_frame(comparison).to_csv(index=False))
    runs = comparison.runs.runs
    plots = write_plots(runs, comparison.recommendation, out, sla_ms(comparison))
    files |= {p.path.name: p.path for p in plots}
    files["report.md"] = out / "report.md"
    atomic_write_text(files["report.md"], render_markdown(comparison, plots))
    files["report.html"] = out / "report.html"
    atomic_write_text(files["report.html"], render_html(comparison, plots))
    return files

"""``report.md`` of one run: what was run, what it measured, and what it assumed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from recsys.profile.timing import summarize_profile


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats to 4 significant digits, pipes escaped."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _latency_rows(latency: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for key in ("p50", "p90", "p95", "p99", "p999"):
        if key not in latency:
            continue
        low, high = latency.get(f"{key}_ci_low"), latency.get(f"{key}_ci_high")
        # The CI is missing where too few requests fall beyond the percentile to estimate it.
        interval = f"[{low:.4g}, {high:.4g}]" if low is not None and high is not None else "n/a"
        rows.append([key, float(latency[key]), interval])
    return rows


def _stage_rows(stages: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    rows = []
    for s in stages:
        lat = s.get("latency_ms", {}) or {}
        rows.append(
            [
                s["name"],
                s["replicas"],
                s.get("hardware"),
                s.get("utilization", float("nan")),
                s.get("mean_batch", float("nan")),
                lat.get("p50", float("nan")),
                lat.get("p99", float("nan")),
            ]
        )
    return rows


def render_run_report(result: Mapping[str, Any], profile: pd.DataFrame | None = None) -> str:
    """Markdown for one ``result.json`` (plus its service-time profile, when given)."""
    q, lat, cost, sla = result["quality"], result["latency_ms"], result["cost"], result["sla"]
    pairing = " -> ".join(f"{p['stage']}: `{p['kind']}`" for p in result["pipeline"])
    parts = [
        "# recsys run report",
        f"Pipeline: {pairing}  \nData: `{q['dataset']}`; traffic: `{result['traffic']['kind']}` "
        f"at {result['traffic']['peak_qps']:g} QPS, {result['traffic']['requests']} requests "
        f"simulated; seed {result['run']['seed']}.",
        f"**SLA p99 {sla['p99_ms']} ms: {'met' if sla['met'] else 'MISSED'}** "
        f"(simulated p99 {float(lat['p99']):.2f} ms); dropped requests: {result['dropped']}.",
        "## Offline quality (test split)",
        md_table(["metric", "value"], [[k, v] for k, v in q.items() if k != "dataset"]),
        "## End-to-end latency (simulated, ms, 95% CI)",
        md_table(["percentile", "ms", "CI"], _latency_rows(lat)),
        "## Stages",
        md_table(
            ["stage", "replicas", "hardware", "utilization", "mean batch", "p50 ms", "p99 ms"],
            _stage_rows(result["stages"]),
        ),
        "## Cost",
        md_table(
            ["per 1k requests (USD)", "monthly (USD)", "TCO monthly (USD)"],
            [[cost["per_1k_requests_usd"], cost["monthly_usd"], cost["tco_monthly_usd"]]],
        ),
    ]
    parts += _assumptions(result)
    if "plan" in result:
        plan = result["plan"]
        parts += [
            "## Capacity plan",
            f"{plan['reason']} ({plan['simulations']} simulations).",
            md_table(
                ["replicas", "p99 ms", "dropped", "meets SLA"],
                [[t["replicas"], t["p99_ms"], t["dropped"], t["met"]] for t in plan["trail"]],
            ),
        ]
    if profile is not None and len(profile):
        summary = summarize_profile(profile)
        parts += [
            "## Measured service time per stage and batch size (this machine)",
            md_table(
                ["stage", "batch", "mean ms", "p50 ms", "p99 ms", "per request ms", "samples"],
                summary[
                    [
                        "stage",
                        "batch_size",
                        "mean_ms",
                        "p50_ms",
                        "p99_ms",
                        "per_request_ms",
                        "samples",
                    ]
                ].itertuples(index=False),
            ),
        ]
    return "\n\n".join(parts) + "\n"


def _assumptions(result: Mapping[str, Any]) -> list[str]:
    rows: list[list[Any]] = []
    for stage, hw in (result.get("hardware") or {}).items():
        rows.append(
            [
                f"hardware of {stage}",
                f"{hw['name']}: ${hw['price_per_hour_usd']}/h, "
                f"{hw['vcpu']} vCPU, speed x{hw['speed_factor']}",
                f"{hw.get('price_source')} ({hw.get('price_date')})",
            ]
        )
    for key, value in (result["cost"].get("assumptions") or {}).items():
        if key != "source":
            rows.append([f"cost.{key}", value, result["cost"]["assumptions"].get("source", "")])
    if not rows:
        return []
    return ["## Assumptions (not measured here)", md_table(["what", "value", "source"], rows)]

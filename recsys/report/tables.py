"""The comparison report's tables as header + rows of display strings.

Markdown (:mod:`recsys.report.compare`) and HTML (:mod:`recsys.report.html`) render the same
rows, so both say exactly the same thing; only the escaping differs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recsys.gate import Policy, fmt
from recsys.report.aggregate import Runs
from recsys.report.recommend import Recommendation

Table = tuple[list[str], list[list[str]]]


@dataclass(frozen=True)
class Comparison:
    """Everything a comparison report shows: the runs, the policy and the recommendation."""

    runs: Runs
    policy: Policy
    recommendation: Recommendation


def _num(value: Any, spec: str = ".4g", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "USD":
        return fmt(float(value), "USD")
    return format(value, spec)


def run_notes(comparison: Comparison, name: str) -> list[str]:
    """``recommended`` / ``closest`` / ``baseline`` / ``Pareto`` tags of a run."""
    rec = comparison.recommendation
    tags = []
    if rec.chosen is not None and rec.chosen.name == name:
        tags.append("recommended")
    if rec.closest is not None and rec.closest.name == name:
        tags.append("closest")
    if rec.baseline is not None and rec.baseline.name == name:
        tags.append("baseline")
    if name in rec.front:
        tags.append("Pareto")
    return tags


def comparison_table(comparison: Comparison) -> Table:
    """One row per usable run: pairing, quality, latency, fleet, cost, SLA and gate verdict."""
    header = [
        "run",
        "pairing",
        "dataset",
        "NDCG@10",
        "recall@10",
        "retr. recall@k",
        "peak QPS",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99.9 ms",
        "replicas",
        "$ per 1k req",
        "$ / month",
        "TCO $ / month",
        "SLA met",
        "dropped",
        "gate",
        "notes",
    ]
    gate = comparison.recommendation.gate
    rows = []
    for run in comparison.runs:
        r = run.row
        verdict = gate[run.name]
        rows.append(
            [
                run.name,
                run.label,
                r["dataset"],
                _num(r["ndcg@10"], ".4f"),
                _num(r["recall@10"], ".4f"),
                _num(r["retrieval_recall@k"], ".4f"),
                _num(r["peak_qps"], "g"),
                *(_num(r[f"{p}_ms"], ".3g") for p in ("p50", "p95", "p99", "p999")),
                r["replicas"],
                _num(r["per_1k_requests_usd"], unit="USD"),
                _num(r["monthly_usd"], ",.0f"),
                _num(r["tco_monthly_usd"], ",.0f"),
                "yes" if r["sla_met"] else "no",
                str(r["dropped"]),
                "pass" if verdict.passed else f"FAIL ({len(verdict.failures)})",
                ", ".join(run_notes(comparison, run.name)),
            ]
        )
    return header, rows


def gate_table(comparison: Comparison) -> Table:
    """Each run's verdict and, for failures, what it misses."""
    rows = []
    for run in comparison.runs:
        verdict = comparison.recommendation.gate[run.name]
        detail = "; ".join(verdict.failures) if not verdict.passed else "all constraints met"
        rows.append([run.name, run.label, "pass" if verdict.passed else "FAIL", detail])
    return ["run", "pairing", "verdict", "misses"], rows


def failed_table(comparison: Comparison) -> Table:
    rows = [[f.name, f.reason, str(f.dir)] for f in comparison.runs.failed]
    return ["run", "why it is not in the comparison", "directory"], rows


def hardware_table(comparison: Comparison) -> Table:
    """Distinct instance types the runs assumed, with their price's date and source."""
    seen: dict[tuple[Any, ...], set[str]] = {}
    for run in comparison.runs:
        for stage, hw in (run.result.get("hardware") or {}).items():
            if not isinstance(hw, Mapping):
                continue
            key = tuple(
                hw.get(k)
                for k in (
                    "name",
                    "price_per_hour_usd",
                    "vcpu",
                    "speed_factor",
                    "price_date",
                    "price_source",
                )
            )
            seen.setdefault(key, set()).add(str(stage))
    rows = [
        [
            str(name),
            _num(price, unit="USD"),
            str(vcpu),
            f"x{speed}",
            str(date),
            str(source),
            ", ".join(sorted(stages)),
        ]
        for (name, price, vcpu, speed, date, source), stages in seen.items()
    ]
    header = [
        "hardware",
        "price per hour",
        "vCPU",
        "speed factor",
        "price date",
        "price source",
        "stages",
    ]
    return header, rows


def cost_assumption_table(comparison: Comparison) -> Table:
    """Distinct cost assumptions (hours per month, engineering, maintenance) and how many runs."""
    seen: dict[tuple[str, str, str], int] = {}
    for run in comparison.runs:
        assumptions = run.result["cost"].get("assumptions") or {}
        source = str(assumptions.get("source", ""))
        for key, value in assumptions.items():
            if key != "source":
                seen[(str(key), str(value), source)] = (
                    seen.get((str(key), str(value), source), 0) + 1
                )
    rows = [[f"cost.{k}", v, s, str(n)] for (k, v, s), n in seen.items()]
    return ["assumption", "value", "source", "runs"], rows


def policy_lines(comparison: Comparison) -> list[str]:
    """The policy's constraints, its baseline, and constraints it could not apply."""
    rec = comparison.recommendation
    lines = list(comparison.policy.describe())
    if rec.baseline is not None:
        lines.append(f"baseline: {rec.baseline.label} ({rec.baseline.name})")
    return lines + list(rec.notes)


def results_frame(comparison: Comparison) -> pd.DataFrame:
    """``results.csv``: every row column plus the gate verdict, failures and tags."""
    frame = comparison.runs.to_frame()
    gate = comparison.recommendation.gate
    names = list(frame["run"])
    frame["gate_passed"] = [gate[n].passed for n in names]
    frame["gate_failures"] = ["; ".join(gate[n].failures) for n in names]
    frame["pareto"] = [n in comparison.recommendation.front for n in names]
    frame["notes"] = [", ".join(run_notes(comparison, n)) for n in names]
    return frame

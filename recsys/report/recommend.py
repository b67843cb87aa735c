"""Which pairing to deploy: the cheapest run that passes the gate, and the reasons why.

Among runs passing every constraint of the policy, the lowest cost per 1000 requests wins
(ties: higher NDCG@10, then run name). The reasons give the constraints it meets (with their
numbers), the budget's cost ceiling, its place on the quality-vs-cost Pareto frontier, and its
savings against a baseline run when one is marked. When nothing passes, the run closest to
passing (fewest failed constraints, then smallest relative miss) is named with what it misses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recsys.gate import GateResult, Policy, fmt
from recsys.report.aggregate import Run

QUALITY, COST = "ndcg@10", "per_1k_requests_usd"


def _finite(point: Mapping[str, Any], keys: Sequence[str]) -> bool:
    return all(isinstance(point[k], int | float) and math.isfinite(float(point[k])) for k in keys)


def dominates(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    maximize: Sequence[str] = (),
    minimize: Sequence[str] = (),
) -> bool:
    """``a`` is at least as good as ``b`` in every objective and strictly better in one."""
    better = [a[k] >= b[k] for k in maximize] + [a[k] <= b[k] for k in minimize]
    strictly = [a[k] > b[k] for k in maximize] + [a[k] < b[k] for k in minimize]
    return all(better) and any(strictly)


def pareto_front(
    points: Sequence[Mapping[str, Any]],
    maximize: Sequence[str] = (),
    minimize: Sequence[str] = (),
) -> list[int]:
    """Indices (ascending) of the points no other point dominates.

    Points with a missing or non-finite objective are never on the front (and dominate
    nothing); equal points do not dominate each other, so all of them stay.
    """
    keys = [*maximize, *minimize]
    if not keys:
        raise ValueError("pareto_front needs at least one objective to maximize or minimize")
    valid = [i for i, p in enumerate(points) if _finite(p, keys)]
    return [
        i
        for i in valid
        if not any(dominates(points[j], points[i], maximize, minimize) for j in valid if j != i)
    ]


@dataclass(frozen=True)
class Recommendation:
    """The chosen run (None when nothing passes) and everything the report says about it."""

    chosen: Run | None
    reasons: list[str]
    gate: dict[str, GateResult]
    front: list[str]
    baseline: Run | None = None
    savings: dict[str, float] = field(default_factory=dict)
    closest: Run | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passing(self) -> list[str]:
        return [name for name, g in self.gate.items() if g.passed]


def _who(run: Run) -> str:
    return f"{run.label} ({run.name})"


def _cost_key(run: Run) -> tuple[float, float, str]:
    cost, quality = run[COST], run[QUALITY]
    return (
        cost if math.isfinite(cost) else math.inf,
        -quality if math.isfinite(quality) else math.inf,
        run.name,
    )


def savings(run: Run, baseline: Run) -> dict[str, float]:
    """``cost_reduction_pct`` (positive = cheaper), ``ndcg_change_pct`` and
    ``monthly_savings_usd`` of ``run`` against ``baseline``."""
    base_cost, base_q = baseline[COST], baseline[QUALITY]
    return {
        "cost_reduction_pct": (base_cost - run[COST]) / base_cost * 100 if base_cost else math.nan,
        "ndcg_change_pct": (run[QUALITY] - base_q) / base_q * 100 if base_q else math.nan,
        "monthly_savings_usd": baseline["monthly_usd"] - run["monthly_usd"],
    }


def _pareto_reason(
    run: Run, runs: Sequence[Run], front: list[str], gate: dict[str, GateResult]
) -> str:
    objectives = {"maximize": [QUALITY], "minimize": [COST]}
    by = [r for r in runs if dominates(r.row, run.row, **objectives)]
    over = [r for r in runs if dominates(run.row, r.row, **objectives)]
    where = f"of the {len(runs)} runs (NDCG@10 vs cost per 1k requests)"
    if run.name in front:
        text = f"On the quality-vs-cost Pareto frontier {where}: no run is both cheaper and better"
        if over:
            text += f"; it dominates {len(over)}: " + ", ".join(r.name for r in over[:10])
        return text + "."
    if not by:
        return f"Not on the quality-vs-cost frontier {where}: its NDCG@10 or cost is unknown."
    failing = [r for r in by if not gate[r.name].passed]
    text = f"Not Pareto-optimal {where}: dominated by " + ", ".join(
        f"{r.name} (NDCG@10 {r[QUALITY]:.4g} at {fmt(r[COST], 'USD')}/1k)" for r in by[:5]
    )
    if len(failing) == len(by):
        text += ", each of which fails the gate"
    return text + "."


def _baseline_reason(run: Run, baseline: Run, saved: dict[str, float]) -> str:
    if run.name == baseline.name:
        return f"The baseline {_who(baseline)} is itself the cheapest run that passes."
    delta = saved["monthly_savings_usd"]
    monthly = f"{fmt(abs(delta), 'USD')}/month {'saved' if delta >= 0 else 'more'}"
    return (
        f"Against the baseline {_who(baseline)}: cost per 1k requests "
        f"{fmt(baseline[COST], 'USD')} -> {fmt(run[COST], 'USD')} "
        f"(cost_reduction_pct {saved['cost_reduction_pct']:.1f}%), NDCG@10 "
        f"{baseline[QUALITY]:.4g} -> {run[QUALITY]:.4g} (ndcg_change_pct "
        f"{saved['ndcg_change_pct']:+.2f}%); {monthly}."
    )


def recommend(runs: Sequence[Run], policy: Policy, baseline: Run | None = None) -> Recommendation:
    """Gate every run against ``policy`` and pick the cheapest that passes (see module doc)."""
    runs = list(runs)
    base_result = baseline.result if baseline is not None else None
    gate = {r.name: policy.check(r.result, base_result) for r in runs}
    front_idx = pareto_front([r.row for r in runs], maximize=[QUALITY], minimize=[COST])
    front = [runs[i].name for i in front_idx]
    notes = policy.unapplied(base_result)
    passing = sorted((r for r in runs if gate[r.name].passed), key=_cost_key)
    if not passing:
        return _none_passes(runs, policy, gate, front=front, baseline=baseline, notes=notes)
    chosen = passing[0]
    reasons = [
        f"{_who(chosen)} is the cheapest of the {len(passing)} run(s) of {len(runs)} that pass "
        f"every constraint of policy {policy.name!r}: {fmt(chosen[COST], 'USD')} per 1k "
        f"requests, {fmt(chosen['monthly_usd'], 'USD')}/month (TCO "
        f"{fmt(chosen['tco_monthly_usd'], 'USD')}/month), NDCG@10 {chosen[QUALITY]:.4g}, "
        f"p99 {chosen['p99_ms']:.4g} ms at {chosen['peak_qps']:g} QPS.",
        *(f"Meets {reason}." for reason in gate[chosen.name].reasons),
    ]
    if policy.budget is not None:
        ceiling = policy.budget.ceiling_per_1k_usd(chosen.result)
        if ceiling is not None:
            reasons.append(
                f"The budget of {fmt(policy.budget.monthly_usd, 'USD')}/month allows at most "
                f"{fmt(ceiling, 'USD')} per 1k requests at this traffic; this pairing uses "
                f"{chosen[COST] / ceiling:.0%} of that ceiling."
            )
    reasons.append(_pareto_reason(chosen, runs, front, gate))
    if len(passing) > 1:
        runner = passing[1]
        reasons.append(
            f"Next cheapest that passes: {_who(runner)} at {fmt(runner[COST], 'USD')} per 1k "
            f"requests (NDCG@10 {runner[QUALITY]:.4g})."
        )
    saved: dict[str, float] = {}
    if baseline is not None:
        saved = savings(chosen, baseline)
        reasons.append(_baseline_reason(chosen, baseline, saved))
    return Recommendation(chosen, reasons, gate, front, baseline, saved, None, notes)


def _none_passes(
    runs: list[Run],
    policy: Policy,
    gate: dict[str, GateResult],
    *,
    front: list[str],
    baseline: Run | None,
    notes: list[str],
) -> Recommendation:
    if not runs:
        return Recommendation(
            None, ["No usable run to choose from."], gate, front, baseline, {}, None, notes
        )
    closest = min(
        runs, key=lambda r: (len(gate[r.name].failures), gate[r.name].shortfall, _cost_key(r))
    )
    misses = gate[closest.name].failures
    reasons = [
        f"No run passes every constraint of policy {policy.name!r} ({len(runs)} run(s) checked).",
        f"Closest: {_who(closest)}, which misses {len(misses)} constraint(s): "
        + "; ".join(misses)
        + ".",
    ]
    met = [c.reason for c in gate[closest.name].checks if c.passed]
    if met:
        reasons.append("It meets " + "; ".join(met) + ".")
    return Recommendation(None, reasons, gate, front, baseline, {}, closest, notes)

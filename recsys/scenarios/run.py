"""A scenario: several pairings run in one ``recsys-sim`` job, compared, and one recommended.

``recsys-sim experiment=ecommerce`` sets a ``scenario`` node::

    scenario:
      name: ecommerce
      baseline: baseline                 # the pairing the others are compared with
      pairings:                          # name -> overrides, as on the command line
        baseline: [retrieval=neural_full, ranking=mlp_large]
        hnsw_lightgbm: [retrieval=hnsw, ranking=lightgbm]
      policy: {constraints: [...]}       # recsys.gate policy (or a policy file path)
      targets: {cost_reduction_pct: 60, ndcg_loss_pct: 1}
      roi: {value_per_ndcg_point_per_1m_usd: 20}
      budget_monthly_usd: 5000

Each pairing's config is composed from ``conf/`` exactly as ``recsys-sim <this command's
overrides> <the pairing's overrides>`` would compose it, and run by ``recsys-sim``'s own
``run`` into ``<run dir>/pairings/<name>/`` (with a ``.hydra/`` record, so a pairing that fails
is listed by the report). Then the comparison report goes to ``<run dir>/report/`` and the
decision to ``<run dir>/recommendation.json``.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from recsys.cli.common import run_dir
from recsys.cost import budget_ceiling_per_1k_usd, roi
from recsys.errors import ConfigError, RecsysError
from recsys.gate import Policy
from recsys.report.aggregate import Run
from recsys.report.compare import Comparison, compare, write_report
from recsys.result import atomic_write_text

log = logging.getLogger(__name__)

RunOne = Callable[[DictConfig, Path], Mapping[str, Any]]


def _key(override: str) -> str:
    """The config key an override sets (``+a.b=1`` -> ``a.b``, ``retrieval=hnsw`` -> ...)."""
    return override.split("=", 1)[0].lstrip("+~")


def _parent_overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside a Hydra app (tests call run_scenario directly)
        return []


def pairing_overrides(parent: list[str], pairing: list[str]) -> list[str]:
    """This command's overrides, minus those the pairing sets itself, then the pairing's."""
    own = {_key(o) for o in pairing}
    dropped = [o for o in parent if _key(o) in own]
    if dropped:
        log.warning("scenario: the pairing overrides %s given on the command line", dropped)
    return [o for o in parent if _key(o) not in own] + list(pairing)


def _policy(node: Any) -> Policy:
    if node is None:
        raise ConfigError("scenario.policy is required (a policy mapping or a policy file)")
    if isinstance(node, str):
        return Policy.load(node)
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(data, dict):
        raise ConfigError(f"scenario.policy must be a mapping or a file path, got {data!r}")
    return Policy.from_dict({str(k): v for k, v in data.items()}, name=str(data.get("name", "p")))


def run_pairings(
    pairings: Mapping[str, list[str]], parent: list[str], out: Path, run_one: RunOne
) -> dict[str, str]:
    """Compose and run every pairing into ``out/<name>``; ``{name: error}`` of those failing."""
    failed: dict[str, str] = {}
    for name, overrides in pairings.items():
        sub = out / name
        args = pairing_overrides(parent, [str(o) for o in overrides])
        log.info("scenario: pairing %s: %s", name, " ".join(args))
        try:
            cfg = compose(config_name="config", overrides=args)
            (sub / ".hydra").mkdir(parents=True, exist_ok=True)
            OmegaConf.save(cfg, sub / ".hydra" / "config.yaml")
            OmegaConf.save(OmegaConf.create(args), sub / ".hydra" / "overrides.yaml")
            run_one(cfg, sub)
        except Exception as exc:  # one bad pairing must not lose the others
            message = str(exc) if isinstance(exc, RecsysError) else repr(exc)
            failed[name] = message
            log.error("scenario: pairing %s failed: %s", name, message)
            sub.mkdir(parents=True, exist_ok=True)
            atomic_write_text(sub / "error.txt", traceback.format_exc())
    return failed


def entry(run: Run) -> dict[str, Any]:
    """One pairing as ``recommendation.json`` shows it."""
    r = run.result
    cost = r["cost"]
    return {
        "pairing": run.label,
        "run": run.name,
        "ndcg@10": r["quality"]["ndcg@10"],
        "p99_ms": r["latency_ms"]["p99"],
        "replicas": {s["name"]: s["replicas"] for s in r["stages"]},
        "hardware": {s["name"]: s.get("hardware") for s in r["stages"]},
        "per_1k_requests_usd": cost["per_1k_requests_usd"],
        "monthly_usd": cost["monthly_usd"],
        "autoscaled_monthly_usd": cost.get("autoscaled_monthly_usd"),
        "tco_monthly_usd": cost["tco_monthly_usd"],
        "sla_met": bool(r["sla"]["met"]),
    }


def recommendation(
    comparison: Comparison, spec: Mapping[str, Any], failed: Mapping[str, str]
) -> dict[str, Any]:
    """The ``recommendation.json`` document."""
    rec = comparison.recommendation
    doc: dict[str, Any] = {
        "scenario": spec.get("name", "scenario"),
        "baseline": entry(rec.baseline) if rec.baseline is not None else None,
        "chosen": entry(rec.chosen) if rec.chosen is not None else None,
        "cost_reduction_pct": None,
        "ndcg_change_pct": None,
        "reasons": list(rec.reasons),
        "failed": {f.name: f.reason for f in comparison.runs.failed} | dict(failed),
    }
    if rec.baseline is None or rec.chosen is None:
        return doc
    base, chosen = doc["baseline"], doc["chosen"]
    doc["cost_reduction_pct"] = rec.savings["cost_reduction_pct"]
    doc["ndcg_change_pct"] = rec.savings["ndcg_change_pct"]
    if base["autoscaled_monthly_usd"] and chosen["autoscaled_monthly_usd"] is not None:
        doc["autoscaled_cost_reduction_pct"] = 100.0 * (
            1.0 - chosen["autoscaled_monthly_usd"] / base["autoscaled_monthly_usd"]
        )
    doc["monthly_savings_usd"] = base["monthly_usd"] - chosen["monthly_usd"]
    targets = spec.get("targets") or {}
    if targets:
        reduction, loss = doc["cost_reduction_pct"], -doc["ndcg_change_pct"]
        doc["targets"] = {
            **targets,
            "met": reduction >= float(targets.get("cost_reduction_pct", 0))
            and loss <= float(targets.get("ndcg_loss_pct", 100))
            and chosen["sla_met"],
        }
    doc |= _money(rec.chosen, rec.baseline, spec)
    return doc


def _money(chosen: Run, baseline: Run, spec: Mapping[str, Any]) -> dict[str, Any]:
    """ROI of the move and the budget's cost-per-request ceiling, with their assumptions."""
    cost = chosen.result["cost"]
    requests = cost.get("monthly_requests")
    assumptions = cost.get("assumptions") or {}
    out: dict[str, Any] = {}
    value = (spec.get("roi") or {}).get("value_per_ndcg_point_per_1m_usd")
    if requests and value is not None:
        one_off = float(assumptions.get("engineering_hours", 0)) * float(
            assumptions.get("engineering_rate_usd", 0)
        )
        result = roi(
            ndcg_before=baseline["ndcg@10"],
            ndcg_after=chosen["ndcg@10"],
            monthly_requests=requests,
            value_per_ndcg_point_per_1m_usd=float(value),
            monthly_cost_before_usd=baseline["monthly_usd"],
            monthly_cost_after_usd=chosen["monthly_usd"],
            one_off_usd=one_off,
            months=float(assumptions.get("amortization_months", 12)),
        )
        out["roi"] = {**result.to_dict(), "value_per_ndcg_point_per_1m_usd": float(value)}
    budget = spec.get("budget_monthly_usd")
    if requests and budget:
        ceiling = budget_ceiling_per_1k_usd(float(budget), requests)
        out["budget"] = {
            "monthly_usd": float(budget),
            "monthly_requests": requests,
            "ceiling_per_1k_requests_usd": ceiling,
            "chosen_autoscaled_per_1k_usd": cost.get("autoscaled_per_1k_requests_usd"),
            "chosen_within": (cost.get("autoscaled_monthly_usd") or cost["monthly_usd"])
            <= float(budget),
        }
    return out


def run_scenario(cfg: DictConfig, run_one: RunOne, out: Path | None = None) -> float:
    """Run, compare and recommend (see the module docstring); returns the chosen pairing's
    cost reduction against the baseline in percent (0 when there is none)."""
    container = OmegaConf.to_container(cfg.scenario, resolve=False)
    if not isinstance(container, dict):
        raise ConfigError("scenario must be a mapping (name, baseline, pairings, policy, ...)")
    spec: dict[str, Any] = {str(k): v for k, v in container.items()}
    pairings = spec.get("pairings") or {}
    baseline = spec.get("baseline")
    if not pairings:
        raise ConfigError("scenario.pairings is empty: nothing to compare")
    if baseline is not None and baseline not in pairings:
        raise ConfigError(f"scenario.baseline {baseline!r} is not one of {sorted(pairings)}")
    policy = _policy(cfg.scenario.get("policy"))  # checked before the slow runs
    out = out or run_dir()
    parent = [o for o in _parent_overrides() if _key(o) != "experiment"]
    experiment = [o for o in _parent_overrides() if _key(o) == "experiment"]
    failed = run_pairings(pairings, experiment + parent, out / "pairings", run_one)
    usable = baseline is not None and baseline not in failed
    comparison = compare([out / "pairings"], policy, {"run": baseline} if usable else None)
    files = write_report(comparison, out / "report")
    doc = recommendation(comparison, spec, failed)
    doc["report"] = str(files["report.html"])
    atomic_write_text(out / "recommendation.json", json.dumps(doc, indent=2) + "\n")
    _print(doc, out)
    return float(doc["cost_reduction_pct"] or 0.0)


def _print(doc: Mapping[str, Any], out: Path) -> None:
    def line(who: str, e: Mapping[str, Any] | None) -> str:
        if e is None:
            return f"  {who:<9}none"
        replicas = ", ".join(f"{k}={v}" for k, v in e["replicas"].items())
        return (
            f"  {who:<9}{e['pairing']}: NDCG@10 {e['ndcg@10']:.4f}, p99 {e['p99_ms']:.1f} ms "
            f"(SLA {'met' if e['sla_met'] else 'MISSED'}), {replicas}, "
            f"${e['per_1k_requests_usd']:.5f}/1k, ${e['monthly_usd']:,.0f}/month"
        )

    print(f"\nscenario {doc['scenario']}")
    print(line("baseline", doc["baseline"]))
    print(line("chosen", doc["chosen"]))
    if doc["cost_reduction_pct"] is not None:
        print(
            f"  cost per 1k requests -{doc['cost_reduction_pct']:.1f}%, "
            f"NDCG@10 {doc['ndcg_change_pct']:+.2f}%"
        )
    for name, why in doc["failed"].items():
        print(f"  failed   {name}: {why}")
    print(f"  wrote    {out / 'recommendation.json'} and {doc.get('report')}")

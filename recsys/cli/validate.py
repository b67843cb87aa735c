"""The ``validate_*`` experiments: one textbook queue, simulated beside its closed form.

``recsys-sim experiment=validate_mmc`` (or ``validate_md1``) skips the ML stages and writes a
``result.json`` whose ``validation`` block holds, per metric, the analytic value, the
simulated estimate with its confidence interval, and the relative error.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from omegaconf import DictConfig

from recsys.cli.common import build, plain, positive, run_dir
from recsys.cost import CostAssumptions, StageFleet, fleet_cost
from recsys.result import write_result
from recsys.sim.validate import validate_queue


def run_validation(cfg: DictConfig) -> dict[str, Any]:
    """Simulate the configured queue, compare with theory, write and return result.json."""
    started = time.time()
    v = cfg.validation
    for key in ("arrival_rate_qps", "mean_service_ms", "servers", "n_requests"):
        positive(v[key], f"validation.{key}")
    report = validate_queue(
        str(v.kind),
        float(v.arrival_rate_qps),
        float(v.mean_service_ms),
        int(v.servers),
        None if v.get("cv") is None else float(v.cv),
        n_requests=int(v.n_requests),
        seed=int(cfg.seed),
        n_batches=int(v.n_batches),
        confidence=float(v.confidence),
    )
    hardware = build(cfg.hardware, "hardware")
    fleet = [StageFleet("queue", int(v.servers), hardware.name, hardware.price_per_hour_usd)]
    cost = fleet_cost(fleet, float(v.arrival_rate_qps), CostAssumptions(**plain(cfg)["cost"]))
    latency = report.pop("latency_ms")
    stage = report.pop("stage")
    result = {
        "schema_version": 1,
        "run": {
            "seed": int(cfg.seed),
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
            "duration_s": round(time.time() - started, 3),
            "run_dir": str(run_dir()),
        },
        "pipeline": [{"stage": "queue", "kind": str(v.kind), "params": report["params"]}],
        "quality": {"dataset": "none"},
        "traffic": {
            "kind": "poisson",
            "peak_qps": float(v.arrival_rate_qps),
            "requests": int(v.n_requests),
        },
        "latency_ms": latency,
        "stages": [{**stage, "hardware": hardware.name}],
        "dropped": report.pop("dropped"),
        "cost": cost.to_dict(),
        "sla": {"p99_ms": float(cfg.sla.p99_ms), "met": latency["p99"] <= float(cfg.sla.p99_ms)},
        "validation": report,
        "config": plain(cfg),
    }
    write_result(run_dir() / "result.json", result)
    _print(report)
    return result


def _print(report: dict[str, Any]) -> None:
    p = report["params"]
    print(
        f"\n{report['kind'].upper()} validation: {p['servers']} server(s), "
        f"utilisation {p['utilization']:.3f}, {report['n_requests']} requests"
    )
    print(f"  {'metric':<22}{'analytic':>12}{'simulated':>12}{'95% CI':>24}{'rel.err':>10}")
    for name, m in report["metrics"].items():
        ci = f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]"
        rel = f"{100 * m['rel_error']:+.2f}%" if m["rel_error"] is not None else "n/a"
        print(f"  {name:<22}{m['analytic']:>12.4g}{m['simulated']:>12.4g}{ci:>24}{rel:>10}")
    verdict = "all within CI" if report["all_within_ci"] else "SOME OUTSIDE CI"
    print(f"  -> {verdict}")

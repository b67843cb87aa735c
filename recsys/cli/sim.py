"""``recsys-sim``: the main job.

Train the configured stages on the configured data, measure offline quality, profile each
stage's service time on this machine, simulate peak traffic through replica pools (planning
the fewest replicas that meet the SLA unless replicas are given), price the fleet, and write
``result.json``, ``report.md``, ``profile.parquet`` and ``records.parquet`` into the run
directory.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from recsys import experiment as ex
from recsys.cache import ArtifactCache
from recsys.cli.common import (
    CONF_DIR,
    EXIT_USER_ERROR,
    build,
    plain,
    positive,
    run_dir,
    user_errors,
)
from recsys.cli.validate import run_validation
from recsys.cost import CostAssumptions
from recsys.errors import ConfigError
from recsys.pipeline import Pipeline, build_pipeline
from recsys.plan import offered_qps
from recsys.report.run_report import render_run_report
from recsys.result import atomic_write_text, write_result
from recsys.scenarios import config as scenario_config
from recsys.scenarios import fleet
from recsys.sim.hardware import Hardware
from recsys.threads import set_threads

log = logging.getLogger("recsys.sim")


def make_pipeline(cfg: DictConfig) -> Pipeline:
    """Retriever + the ranker cascade from ``pipeline.rankers`` (or the single ``ranking``)."""
    positive(cfg.k, "k")
    positive(cfg.final_n, "final_n")
    retriever = build(cfg.retrieval, "retrieval")
    specs = []
    for i, node in enumerate(cfg.pipeline.rankers or []):
        ranker = build(node.ranker, f"pipeline.rankers[{i}].ranker")
        if ranker is None:  # ranking=none: keep retrieval order
            continue
        specs.append({"ranker": ranker, "n": node.get("n")})
    return build_pipeline(retriever, specs, k=int(cfg.k), final_n=int(cfg.final_n))


def serving_options(cfg: DictConfig, stages: list[str]) -> dict[str, ex.ServingOptions]:
    """Per-stage serving settings: ``sim.serving.default`` overridden by ``sim.serving.<stage>``."""
    serving = cfg.sim.serving
    unknown = set(serving) - {"default", *stages}
    if unknown:
        raise ConfigError(f"sim.serving names unknown stage(s) {sorted(unknown)}; stages: {stages}")
    out = {}
    for name in stages:
        merged = OmegaConf.merge(serving.default, serving.get(name) or {})
        try:
            out[name] = ex.ServingOptions(**OmegaConf.to_container(merged, resolve=True))
        except TypeError as exc:
            raise ConfigError(f"sim.serving.{name}: {exc}") from None
    return out


def hardware_for(cfg: DictConfig, stages: list[str]) -> dict[str, Hardware]:
    """The ``hardware`` option for every stage, unless ``stage_hardware.<stage>`` overrides it."""
    default = scenario_config.priced_hardware(cfg.hardware, "hardware", build)
    per_stage = cfg.get("stage_hardware") or {}
    unknown = set(per_stage) - set(stages)
    if unknown:
        raise ConfigError(f"stage_hardware names unknown stage(s) {sorted(unknown)}")
    return {
        name: scenario_config.priced_hardware(per_stage[name], f"stage_hardware.{name}", build)
        if name in per_stage
        else default
        for name in stages
    }


def replicas_for(cfg: DictConfig, stages: list[str]) -> dict[str, int] | None:
    """Fixed replica counts from ``sim.replicas``, or None to plan the fewest meeting the SLA."""
    given = cfg.sim.replicas
    if given is None or given == "auto":
        return None
    if isinstance(given, int):
        given = dict.fromkeys(stages, given)
    missing = [s for s in stages if s not in given]
    if missing:
        raise ConfigError(f"sim.replicas lacks stage(s) {missing}")
    for name in stages:
        positive(given[name], f"sim.replicas.{name}")
    return {s: int(given[s]) for s in stages}


def run(cfg: DictConfig, out: Path | None = None) -> dict[str, Any]:
    """The whole job; returns the ``result.json`` document it wrote (into ``out``, by default
    the Hydra run directory)."""
    if cfg.get("validation"):
        return run_validation(cfg)
    started = time.time()
    out = out or run_dir()
    seed = int(cfg.seed)
    positive(cfg.sla.p99_ms, "sla.p99_ms")
    positive(cfg.sim.n_requests, "sim.n_requests")
    if cfg.traffic.get("peak_qps") is not None:  # null for a replayed trace: its own rate
        positive(cfg.traffic.peak_qps, "traffic.peak_qps")
    workload = build(cfg.traffic.workload, "traffic.workload")
    pipeline = make_pipeline(cfg)
    # Check every stage setting before the slow steps, so bad input fails in seconds.
    stages = [d["stage"] for d in pipeline.describe()]
    hardware = hardware_for(cfg, stages)
    serving = serving_options(cfg, stages)
    replicas = replicas_for(cfg, stages)
    apis = scenario_config.hosted_apis(cfg, stages)
    catalogue = scenario_config.catalogue(cfg, pipeline.describe(), build)
    if catalogue is not None and replicas is not None:
        raise ConfigError("a hardware catalogue plans replicas: drop sim.replicas or catalogue")
    profile_opts = ex.ProfileOptions(
        batch_sizes=tuple(int(b) for b in cfg.profile.batch_sizes),
        repeats=int(cfg.profile.repeats),
        warmup=int(cfg.profile.warmup),
        sample_users=int(cfg.profile.sample_users),
    )
    set_threads(int(cfg.profile.n_threads))

    data = build(cfg.data, "data")
    split = ex.split_data(data, cfg.split.valid_frac, cfg.split.test_frac, cfg.split.mode)
    log.info("fitting %s", [s["kind"] for s in pipeline.describe()])
    pipeline.fit(split, cache=ArtifactCache(cfg.cache_dir) if cfg.get("cache_dir") else None)
    quality = ex.evaluate_quality(pipeline, split, cfg.eval_users, seed)
    log.info("offline quality: %s", _fmt(quality.to_dict()))
    profile = ex.profile_pipeline(pipeline, split, profile_opts, seed, progress=cfg.progress)
    services = ex.service_models(profile, stages, hardware)

    rng = np.random.default_rng(seed)
    duration_s = cfg.traffic.get("duration_s")
    arrivals = workload.arrivals(
        rng,
        n_requests=int(cfg.sim.n_requests),
        duration_s=None if duration_s is None else float(duration_s),
    )
    if len(arrivals) < 2:
        raise ConfigError(f"traffic produced {len(arrivals)} arrival(s): nothing to simulate")
    warmup_s = float(arrivals[min(int(cfg.sim.warmup_requests), len(arrivals) - 1)])
    specs = ex.stage_specs(services, serving, hardware, replicas or dict.fromkeys(stages, 1))
    sim_options = ex.SimOptions(
        n_batches=int(cfg.sim.n_batches),
        confidence=float(cfg.sim.confidence),
        timeseries_bin_s=float(cfg.sim.timeseries_bin_s),
        autoscaler=build(cfg.sim.autoscaler, "sim.autoscaler") if cfg.sim.autoscaler else None,
        engine=str(cfg.sim.get("engine", "auto")),
    )
    chosen = None
    if (catalogue is not None or apis) and replicas is None:
        # Plan hardware (catalogue) and replicas; hosted-API stages keep their one "replica".
        specs, options = fleet.for_catalogue(specs, profile, catalogue, apis)
        specs, sim, plan, chosen = fleet.simulate_catalogue(
            specs,
            options,
            arrivals,
            sla_p99_ms=float(cfg.sla.p99_ms),
            seed=seed,
            warmup_s=warmup_s,
            max_replicas=int(cfg.sim.max_replicas),
            progress=cfg.progress,
            options=sim_options,
            fixed=set(apis),
        )
    else:
        if apis:  # fixed replicas: swap the API stages in, and simulate as given
            specs = [fleet.api_stage(s, apis[s.name])[0] if s.name in apis else s for s in specs]
        specs, sim, plan = ex.simulate_fleet(
            specs,
            arrivals,
            sla_p99_ms=float(cfg.sla.p99_ms),
            seed=seed,
            warmup_s=warmup_s,
            plan=replicas is None,
            max_replicas=int(cfg.sim.max_replicas),
            progress=cfg.progress,
            options=sim_options,
        )
    # Price the fleet at the rate actually simulated (a replayed trace brings its own), and
    # a month of the workload's daily profile, provisioned for its peak and autoscaled.
    qps = offered_qps(arrivals)
    month_profile = fleet.traffic_profile(workload, qps)
    cost, month = fleet.price(
        specs, qps, CostAssumptions(**plain(cfg)["cost"]), month_profile, apis
    )

    result = ex.assemble_result(
        run={
            "seed": seed,
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
            "duration_s": round(time.time() - started, 3),
            "run_dir": str(out),
        },
        pipeline=pipeline,
        quality=quality,
        dataset=data.name,
        traffic={
            "kind": str(cfg.traffic.kind),
            "peak_qps": qps if cfg.traffic.get("peak_qps") is None else float(cfg.traffic.peak_qps),
            "offered_qps": qps,
            "requests": len(arrivals),
            **_describe(workload),
        },
        sim=sim,
        specs=specs,
        cost=cost,
        sla_p99_ms=float(cfg.sla.p99_ms),
        config=plain(cfg),
        plan=plan,
        extra={
            "hardware": {s.name: s.hardware.to_dict() for s in specs if s.hardware},
            **({"catalogue": chosen.to_dict()} if chosen is not None else {}),
            **({"hosted_api": {k: a.to_dict() for k, a in apis.items()}} if apis else {}),
        },
    )
    result["cost"].update(fleet.month_fields(month, month_profile))
    _write_outputs(out, result, profile, sim, bool(cfg.write_records))
    _print_summary(result, out)
    return result


def _describe(obj: object) -> dict[str, Any]:
    describe = getattr(obj, "describe", None)
    return dict(describe()) if describe else {}


def _write_outputs(
    out: Path, result: dict[str, Any], profile: Any, sim: Any, records: bool
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    profile.to_parquet(out / "profile.parquet", index=False)
    if records and sim.records is not None:
        sim.records.to_parquet(out / "records.parquet", index=False)
    if getattr(sim, "timeseries", None) is not None:
        sim.timeseries.to_csv(out / "timeseries.csv", index=False)
    atomic_write_text(out / "report.md", render_run_report(result, profile))
    # result.json last: its presence means the run completed.
    write_result(out / "result.json", result)


def _fmt(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
    )


def _print_summary(result: dict[str, Any], out: Path) -> None:
    lat, cost, q = result["latency_ms"], result["cost"], result["quality"]
    pairing = " -> ".join(f"{p['stage']}:{p['kind']}" for p in result["pipeline"])
    replicas = ", ".join(f"{s['name']}={s['replicas']}" for s in result["stages"])
    print(
        f"\n{pairing}\n"
        f"  quality  ({q['dataset']}): NDCG@10 {q['ndcg@10']:.4f}  recall@10 {q['recall@10']:.4f}"
        f"  retrieval recall@{q['k']} {q['retrieval_recall@k']:.4f}\n"
        f"  latency  at {result['traffic']['peak_qps']:g} QPS: p50 {lat['p50']:.2f} ms  "
        f"p99 {lat['p99']:.2f} ms  p99.9 {lat['p999']:.2f} ms  "
        f"(SLA p99 {result['sla']['p99_ms']} ms: {'met' if result['sla']['met'] else 'MISSED'})\n"
        f"  fleet    {replicas}; dropped {result['dropped']}\n"
        f"  cost     ${cost['per_1k_requests_usd']:.5f} per 1k requests, "
        f"${cost['monthly_usd']:,.0f}/month, TCO ${cost['tco_monthly_usd']:,.0f}/month\n"
        f"  wrote    {out / 'result.json'} and report.md"
    )


class JobFailed(RuntimeError):
    """One job of a multirun stopped on bad input (its one-line error is on stderr)."""


@hydra.main(config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | tuple[float, ...]:
    try:
        with user_errors():
            objective = scenario_config.objective(cfg)  # a typo fails before any training
            if cfg.get("scenario"):
                from recsys.scenarios.run import run_scenario

                return run_scenario(cfg, run)
            result = run(cfg)
            # Returned for the Optuna sweeper (and ignored otherwise).
            return objective.value(result)
    except SystemExit as exc:
        # In a sweep, bad input fails this job (listed by the sweep and by recsys-report),
        # not the whole sweep.
        if exc.code == EXIT_USER_ERROR and _multirun():
            raise JobFailed("recsys: error: bad input; see this job's log") from None
        raise


def _multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def main() -> None:
    """Console-script entry point."""
    _hydra_main()


if __name__ == "__main__":
    main()

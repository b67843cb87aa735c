"""``recsys-loadtest``: a real open-loop load test of the real pipeline, and calibration.

``loadtest.mode=run`` (default): train (or restore from the cache) and profile the configured
stages as ``recsys-sim`` does, serve them in this process with the configured replicas,
workers and batching, replay the simulator's arrivals open-loop, and write ``loadtest.json``,
``records.parquet`` (real, in the simulator's record format), ``sim_records.parquet`` and
``profile.parquet``. A run whose generator fell behind its schedule, or whose server could not
keep up, is written with that status and exits with code 2.

``experiment=calibrate`` (``loadtest.mode=calibrate``): for each pairing and utilisation level,
simulated vs measured p50/p95/p99 per stage and end to end; writes ``calibration.json``,
``calibration.md`` and ``cdf_<pairing>.png`` (see :mod:`recsys.loadtest.calibrate`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from recsys import experiment as ex
from recsys.cache import ArtifactCache
from recsys.cli.common import CONF_DIR, build, plain, positive, run_dir, user_errors
from recsys.cli.sim import make_pipeline, replicas_for, serving_options
from recsys.errors import ConfigError, DataError
from recsys.loadtest.calibrate import (
    SERVING_FIELDS,
    CalibrationOptions,
    Pairing,
    PairingResult,
    calibrate_pairing,
    reanalyse_pairing,
)
from recsys.loadtest.compare import END_TO_END, compare, latencies_ms
from recsys.loadtest.machine import machine_noise
from recsys.loadtest.model import sim_specs
from recsys.loadtest.pipeline_stages import live_stages
from recsys.loadtest.report import (
    calibration_doc,
    check_calibration,
    plot_cdfs,
    render_markdown,
    to_json,
)
from recsys.loadtest.run import LoadTestLimits, LoadTestResult, run_loadtest
from recsys.loadtest.server import LiveStage
from recsys.result import atomic_write_text
from recsys.sim.engine import simulate
from recsys.sim.service import EmpiricalServiceTime
from recsys.threads import set_threads

log = logging.getLogger("recsys.loadtest")


@dataclass(frozen=True, eq=False)
class Served:
    """A fitted, profiled pipeline ready to serve."""

    name: str
    stages: list[LiveStage]
    profile: pd.DataFrame
    users: np.ndarray
    workload: Any
    describe: list[dict[str, Any]]


def limits_from(cfg: DictConfig) -> LoadTestLimits:
    """``loadtest.limits`` as :class:`LoadTestLimits` (a ConfigError names a bad key)."""
    given = OmegaConf.to_container(cfg.loadtest.limits, resolve=True)
    if not isinstance(given, dict):
        raise ConfigError("loadtest.limits must be a mapping")
    try:
        return LoadTestLimits(**{str(k): v for k, v in given.items()})
    except TypeError as exc:
        raise ConfigError(f"loadtest.limits: {exc}") from None


def set_switch_interval(value_ms: float | None) -> float:
    """Apply ``loadtest.switch_interval_ms`` (None keeps Python's); the interval in ms."""
    if value_ms is not None:
        positive(value_ms, "loadtest.switch_interval_ms")
        sys.setswitchinterval(float(value_ms) / 1000.0)
    return sys.getswitchinterval() * 1000.0


def prepare(cfg: DictConfig, name: str | None = None) -> Served:
    """Fit (through the artifact cache) and profile the configured pipeline; its live stages."""
    seed = int(cfg.seed)
    workload = build(cfg.traffic.workload, "traffic.workload")
    pipeline = make_pipeline(cfg)
    stages = [d["stage"] for d in pipeline.describe()]
    serving = serving_options(cfg, stages)
    replicas = replicas_for(cfg, stages) or dict.fromkeys(stages, 1)
    ignored = {s: o.network_ms for s, o in serving.items() if o.network_ms}
    if ignored:
        log.info("network_ms %s ignored: the load test runs every stage in one process", ignored)
    options = ex.ProfileOptions(
        batch_sizes=tuple(int(b) for b in cfg.profile.batch_sizes),
        repeats=int(cfg.profile.repeats),
        warmup=int(cfg.profile.warmup),
        sample_users=int(cfg.profile.sample_users),
    )
    data = build(cfg.data, "data")
    split = ex.split_data(data, cfg.split.valid_frac, cfg.split.test_frac, cfg.split.mode)
    cache = ArtifactCache(cfg.cache_dir) if cfg.get("cache_dir") else None
    started = time.perf_counter()
    pipeline.fit(split, cache=cache)
    log.info("fitted %s in %.1f s", stages, time.perf_counter() - started)
    profile = ex.profile_pipeline(pipeline, split, options, seed, progress=bool(cfg.progress))
    users = ex.sample_users(split.test_users(), options.sample_users, seed)
    describe = pipeline.describe()
    return Served(
        name=name or "+".join(d["kind"] for d in describe),
        stages=live_stages(pipeline, serving, replicas),
        profile=profile,
        users=users,
        workload=workload,
        describe=describe,
    )


# -- mode=run -------------------------------------------------------------------------------


def run_once(cfg: DictConfig, out: Path, limits: LoadTestLimits) -> dict[str, Any]:
    """One open-loop load test of the configured traffic; ``loadtest.json``."""
    lt = cfg.loadtest
    positive(lt.n_requests, "loadtest.n_requests")
    served = prepare(cfg)
    seed = int(cfg.seed)
    # The simulator's arrivals: the same generator, seed and count as recsys-sim.
    arrivals = served.workload.arrivals(np.random.default_rng(seed), n_requests=int(lt.n_requests))
    warmup_s = float(arrivals[min(int(lt.warmup_requests), len(arrivals) - 1)])
    payloads = np.random.default_rng([seed, 1]).choice(served.users, len(arrivals))
    log.info("load test: %d requests over %.1f s", len(arrivals), arrivals[-1])
    real = run_loadtest(
        arrivals,
        served.stages,
        payloads,
        warmup_s=warmup_s,
        limits=limits,
        generator=str(lt.generator),
        gc_freeze=bool(lt.gc_freeze),
    )
    names = [s.name for s in served.stages]
    doc: dict[str, Any] = {
        "schema_version": 1,
        "pipeline": served.describe,
        "stages": [_stage_settings(s) for s in served.stages],
        "traffic": {"kind": str(cfg.traffic.kind), "requests": len(arrivals)},
        **real.to_dict(),
    }
    real_lat = latencies_ms(real.records, names, warmup_s)
    doc["real_ms"] = {k: _pcts(v) for k, v in real_lat.items()} if real.ok else None
    sim_records = None
    if bool(lt.simulate):
        models = {n: EmpiricalServiceTime.from_table(served.profile, stage=n) for n in names}
        sim = simulate(arrivals, sim_specs(served.stages, models), seed=seed, warmup_s=warmup_s)
        sim_records = sim.records
        comparison = compare(latencies_ms(sim.records, names, warmup_s), real_lat)
        doc["comparison"] = comparison if real.ok else None
    out.mkdir(parents=True, exist_ok=True)
    served.profile.to_parquet(out / "profile.parquet", index=False)
    real.records.to_parquet(out / "records.parquet", index=False)
    if sim_records is not None:
        sim_records.to_parquet(out / "sim_records.parquet", index=False)
    doc["config"] = plain(cfg)
    atomic_write_text(out / "loadtest.json", to_json(doc))
    _print_run(real, doc, out)
    real.raise_for_status()
    return doc


def _stage_settings(stage: LiveStage) -> dict[str, Any]:
    fields = dataclasses.asdict(stage)
    fields.pop("run")
    return fields


def _pcts(samples: np.ndarray) -> dict[str, float]:
    if samples.size == 0:
        return {}
    p50, p95, p99 = np.percentile(samples, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "n": int(samples.size)}


def _print_run(real: LoadTestResult, doc: Mapping[str, Any], out: Path) -> None:
    gen = real.generator()
    lines = [f"\nload test: {real.status}: {real.message}"]
    if real.ok and doc.get("real_ms"):
        e2e = doc["real_ms"]["end_to_end"]
        lines.append(
            f"  measured end to end: p50 {e2e['p50']:.3f} ms  p95 {e2e['p95']:.3f} ms  "
            f"p99 {e2e['p99']:.3f} ms  (generator lag p99 {gen['lag_p99_ms']:.3f} ms)"
        )
        cmp = (doc.get("comparison") or {}).get("end_to_end")
        if cmp:
            lines.append(
                f"  simulated (profile): p50 {cmp['sim_p50_ms']:.3f} ms ({cmp['err_p50']:+.1%})"
                f"  p99 {cmp['sim_p99_ms']:.3f} ms ({cmp['err_p99']:+.1%})"
            )
    lines.append(f"  wrote    {out / 'loadtest.json'} and records.parquet")
    print("\n".join(lines))


# -- mode=calibrate -------------------------------------------------------------------------


def pairing_configs(cfg: DictConfig) -> list[tuple[str | None, DictConfig]]:
    """``(name, config)`` of every pairing: the configured one, or each of
    ``loadtest.calibration.pairings`` recomposed with its overrides."""
    pairings = cfg.loadtest.calibration.pairings or []
    if not pairings:
        return [(None, cfg)]
    from hydra import compose

    task = list(HydraConfig.get().overrides.task)
    out = []
    for i, entry in enumerate(pairings):
        overrides = [str(o) for o in (entry.get("overrides") or [])]
        keys = {_key(o) for o in overrides}
        base = [o for o in task if _key(o) not in keys]
        try:
            composed = compose(config_name="loadtest/config", overrides=[*base, *overrides])
        except Exception as exc:  # Hydra's errors name the bad override
            raise ConfigError(f"loadtest.calibration.pairings[{i}]: {exc}") from None
        out.append((entry.get("name"), composed))
    return out


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def calibration_options(cfg: DictConfig) -> CalibrationOptions:
    c = cfg.loadtest.calibration
    return CalibrationOptions(
        utilizations=tuple(float(u) for u in c.utilizations),
        n_requests=int(c.n_requests),
        warmup_requests=int(c.warmup_requests),
        probe_requests=int(c.probe_requests),
        capacity=str(c.capacity),
        capacity_requests=int(c.capacity_requests),
        min_batch_samples=int(c.min_batch_samples),
        sim_replications=int(c.sim_replications),
        drift_window_ms=float(c.drift_window_ms),
        drift_block_windows=int(c.drift_block_windows),
        drift_replay=bool(c.drift_replay),
        stall_min_ms=float(c.stall_min_ms),
        warp_window_ms=float(c.warp_window_ms),
        warp_block_windows=int(c.warp_block_windows),
        warp_shrink=float(c.warp_shrink),
        interleave_s=float(c.interleave_s),
        generator=str(cfg.loadtest.generator),
        gc_freeze=bool(cfg.loadtest.gc_freeze),
        seed=int(cfg.seed),
    )


def run_calibration(
    cfg: DictConfig,
    out: Path,
    options: CalibrationOptions,
    limits: LoadTestLimits,
    switch_ms: float,
) -> dict[str, Any]:
    """Every pairing at every level; ``calibration.json``, ``calibration.md``, CDF plots."""
    started = time.time()
    machine: dict[str, Any] = machine_noise()
    log.info("machine: %s", machine)
    results: list[PairingResult] = []
    for name, pcfg in pairing_configs(cfg):
        served = prepare(pcfg, name)
        pairing = Pairing(served.name, served.stages, served.profile, served.users, served.workload)
        log.info("calibrating %s", pairing.name)
        result = calibrate_pairing(pairing, options, limits)
        results.append(result)
        _write_pairing(out, served.profile, result)
    machine["after"] = machine_noise()
    settings = {
        **dataclasses.asdict(options),
        "limits": dataclasses.asdict(limits),
        "n_threads": int(cfg.profile.n_threads),
        "switch_interval_ms": switch_ms,
        "profile": plain(cfg)["profile"],
    }
    run = {
        "seed": int(cfg.seed),
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "duration_s": round(time.time() - started, 1),
        "run_dir": str(out),
    }
    return _write_calibration(
        cfg, out, results, run=run, machine=machine, settings=settings, config=plain(cfg)
    )


# The settings of how a calibration run measured; a re-analysis keeps the earlier run's.
MEASUREMENT = ("utilizations", "n_requests", "warmup_requests", "probe_requests", "interleave_s")


def reanalyse_calibration(
    cfg: DictConfig, out: Path, options: CalibrationOptions, source: Path
) -> dict[str, Any]:
    """An earlier calibration run (``source``) analysed again with this config's model
    settings: its saved load tests, profiles, capacities and stage settings; no training,
    no load test. Writes the same files as :func:`run_calibration`."""
    started = time.time()
    earlier = _read_calibration(source)
    try:
        measured_with = {k: earlier["settings"][k] for k in MEASUREMENT}
        measured_with["utilizations"] = tuple(float(u) for u in measured_with["utilizations"])
        options = dataclasses.replace(options, **measured_with)
        old_cfg = OmegaConf.create(earlier["config"])
        pairings = earlier["pairings"]
        levels = earlier["levels"]
        # Every key read below, checked here: a damaged file fails in one line.
        _ = [(e["name"], list(e["stages"]), float(e["capacity_qps"])) for e in pairings]
        _ = [(r["pairing"], r["stage"], float(r["utilization"]), r["status"]) for r in levels]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{source / 'calibration.json'}: not a calibration run ({exc})") from None
    results = []
    for i, entry in enumerate(pairings):
        pairing = _saved_pairing(source, old_cfg, i, entry)
        keep = ("name", "stages", "capacity_qps", "serving")
        capacity = {k: v for k, v in entry.items() if k not in keep}
        saved = [
            (
                float(r["utilization"]),
                _saved_records(source, pairing.name, r["utilization"]),
                str(r["status"]),
            )
            for r in levels
            if r["pairing"] == pairing.name and r["stage"] == END_TO_END
        ]
        log.info("re-analysing %s (%d levels) from %s", pairing.name, len(saved), source)
        result = reanalyse_pairing(pairing, options, float(entry["capacity_qps"]), capacity, saved)
        results.append(result)
        _write_pairing(out, pairing.profile, result)
    settings = {
        **earlier["settings"],
        **dataclasses.asdict(options),
        "limits": earlier["settings"].get("limits"),
    }
    run = {
        "seed": int(cfg.seed),
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "duration_s": round(time.time() - started, 1),
        "run_dir": str(out),
        "reanalysed_from": str(source),
        "measured_at": earlier.get("run", {}).get("started_at"),
    }
    return _write_calibration(
        cfg,
        out,
        results,
        run=run,
        machine=earlier.get("machine", {}),
        settings=settings,
        config=earlier["config"],
    )


def _read_calibration(source: Path) -> dict[str, Any]:
    path = source / "calibration.json"
    if not path.is_file():
        raise DataError(f"loadtest.calibration.reanalyse: no calibration.json in {source}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: not a calibration run (not a JSON object)")
    return doc


def _saved_pairing(source: Path, cfg: DictConfig, i: int, entry: Mapping[str, Any]) -> Pairing:
    """Pairing ``i`` of an earlier run (``cfg`` its config, ``entry`` its ``pairings[i]``)
    as it was served, for analysis only: its stage settings and saved profile (the stages
    are not built: nothing is served)."""
    name, stages = str(entry["name"]), [str(s) for s in entry["stages"]]
    serving = entry.get("serving") or _serving_from_config(cfg, i, stages)
    try:
        live = [LiveStage(name=s, run=_not_served, **serving[s]) for s in stages]
    except (KeyError, TypeError) as exc:
        raise DataError(f"{source / 'calibration.json'}: bad serving settings ({exc})") from None
    path = source / f"profile_{_slug(name)}.parquet"
    if not path.is_file():
        raise DataError(f"loadtest.calibration.reanalyse: missing {path}")
    profile = pd.read_parquet(path)
    workload = build(cfg.traffic.workload, "traffic.workload")
    return Pairing(name, live, profile, np.empty(0, np.int64), workload)


def _serving_from_config(cfg: DictConfig, i: int, stages: list[str]) -> dict[str, Any]:
    """Serving settings of pairing ``i`` from a run that did not record them: the run's
    ``sim`` settings with the pairing's own ``sim.*`` overrides applied."""
    pairings = cfg.loadtest.calibration.pairings or []
    overrides = [str(o) for o in (pairings[i].get("overrides") or [])] if pairings else []
    sim_overrides = [o for o in overrides if _key(o).startswith("sim.")]
    merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist(sim_overrides))
    assert isinstance(merged, DictConfig)
    serving = serving_options(merged, stages)
    replicas = replicas_for(merged, stages) or dict.fromkeys(stages, 1)
    per_replica = [f for f in SERVING_FIELDS if f != "replicas"]
    return {
        s: {"replicas": int(replicas[s]), **{f: getattr(serving[s], f) for f in per_replica}}
        for s in stages
    }


def _not_served(_batch: Any) -> Any:
    raise RuntimeError("a re-analysed pairing is not served")


def _saved_records(source: Path, name: str, utilization: float) -> pd.DataFrame:
    path = source / "records" / f"{_slug(name)}_u{round(100 * utilization):02d}.parquet"
    if not path.is_file():
        raise DataError(f"loadtest.calibration.reanalyse: missing {path}")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None


def _write_calibration(
    cfg: DictConfig,
    out: Path,
    results: list[PairingResult],
    *,
    run: Mapping[str, Any],
    machine: Mapping[str, Any],
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The report of ``results``; ``config`` is what served and measured them (a
    re-analysis keeps the earlier run's: its pairings; ``settings`` has the models')."""
    targets = {k: float(v) for k, v in cfg.loadtest.calibration.targets.items()}
    doc = calibration_doc(results, run=run, machine=machine, settings=settings, targets=targets)
    check_calibration(doc)
    plots = {}
    for result in results:
        path = plot_cdfs(result, out / f"cdf_{_slug(result.name)}.png")
        plots[result.name] = path.name
    atomic_write_text(out / "calibration.md", render_markdown(doc, plots) + "\n")
    doc["config"] = dict(config)
    atomic_write_text(out / "calibration.json", to_json(doc))
    _print_calibration(doc, out)
    return doc


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def _write_pairing(out: Path, profile: pd.DataFrame, result: PairingResult) -> None:
    slug = _slug(result.name)
    profile.to_parquet(out / f"profile_{slug}.parquet", index=False)
    for u, records in result.records.items():
        path = out / "records" / f"{slug}_u{round(100 * u):02d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        records.to_parquet(path, index=False)


def _print_calibration(doc: Mapping[str, Any], out: Path) -> None:
    lines = ["", "calibration (end to end; err = (sim - real) / real):"]
    for r in doc["levels"]:
        if r["stage"] != "end_to_end":
            continue
        prof = r.get("profiled", {})
        lines.append(
            f"  {r['pairing']:<32} {100 * r['utilization']:>3.0f}%  real p50 "
            f"{r['real_p50_ms']:.3f} p99 {r['real_p99_ms']:.3f} ms | {r['model']}: "
            f"err p50 {r['err_p50']:+.1%} p99 {r['err_p99']:+.1%} | profiled: err p50 "
            f"{prof.get('err_p50', float('nan')):+.1%} p99 {prof.get('err_p99', float('nan')):+.1%}"
            f"  [{r['status']}]"
        )
    for name, v in doc["targets"]["verdict"].items():
        lines.append(f"  targets {name}: {'met' if v['met'] else 'NOT met'}")
    lines.append(f"  wrote {out / 'calibration.json'}, calibration.md and cdf_*.png")
    print("\n".join(lines))


# -- entry point ----------------------------------------------------------------------------


def run(cfg: DictConfig) -> dict[str, Any]:
    """The whole job for ``loadtest.mode``."""
    out = run_dir()
    mode = str(cfg.loadtest.mode)
    if mode not in ("run", "calibrate"):
        raise ConfigError(f"loadtest.mode must be run or calibrate, got {mode!r}")
    # Check every setting before the slow steps, so bad input fails in seconds.
    limits = limits_from(cfg)
    options = calibration_options(cfg) if mode == "calibrate" else None
    switch_ms = set_switch_interval(cfg.loadtest.switch_interval_ms)
    set_threads(int(cfg.profile.n_threads))
    if options is not None:
        source = cfg.loadtest.calibration.get("reanalyse")
        if source:
            return reanalyse_calibration(cfg, out, options, Path(to_absolute_path(str(source))))
        return run_calibration(cfg, out, options, limits, switch_ms)
    return run_once(cfg, out, limits)


@hydra.main(config_path=str(CONF_DIR), config_name="loadtest/config")
def _hydra_main(cfg: DictConfig) -> None:
    with user_errors():
        run(cfg)


def main() -> None:
    """Console-script entry point."""
    _hydra_main()


if __name__ == "__main__":
    main()

"""Fake but realistic run directories: ``result.json`` shaped like ``assemble_result`` writes it.

Costs follow ``recsys.cost.fleet_cost`` (replicas x price per hour; per 1k requests at the
peak QPS; 730 hours a month; TCO adds engineering and maintenance), so tests can state exact
expected numbers from the few inputs they choose.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HOURS = 730.0
ENGINEERING_MONTHLY = 160 * 150 / 12  # 2000.0
MAINTENANCE_MONTHLY = 500.0


def faiss(factory: str, **search: Any) -> tuple[str, dict[str, Any]]:
    """A FAISS retrieval stage as ``Pipeline.describe`` reports it."""
    kind = "faiss_" + "".join(ch if ch.isalnum() else "_" for ch in factory.lower()).strip("_")
    params = {
        "factory": factory,
        "nprobe": None,
        "ef_search": None,
        "ef_construction": None,
        "metric": "ip",
    }
    params.update(search)
    return kind, params


def result_doc(
    *,
    retrieval: tuple[str, dict[str, Any]] = faiss("HNSW32", ef_search=64, ef_construction=40),
    rankers: Sequence[str] = ("lightgbm",),
    ndcg: float = 0.3,
    recall: float = 0.12,
    retrieval_recall: float = 0.95,
    p99_ms: float = 60.0,
    replicas: Sequence[int] = (1, 2),
    price_per_hour_usd: float = 1.0,
    qps: float = 100.0,
    dropped: int = 0,
    measured: int = 10_000,
    sla_p99_ms: float = 100.0,
    dataset: str = "synthetic",
) -> dict[str, Any]:
    """One ``result.json`` document (schema version 1)."""
    names = ["retrieval"] + (
        ["ranking"] if len(rankers) == 1 else [f"ranking_{i + 1}" for i in range(len(rankers))]
    )
    if len(replicas) != len(names):
        raise ValueError(f"need one replica count per stage {names}")
    pipeline = [{"stage": "retrieval", "kind": retrieval[0], "params": retrieval[1], "n": 200}]
    pipeline += [
        {"stage": n, "kind": k, "params": {}, "n": 10}
        for n, k in zip(names[1:], rankers, strict=True)
    ]
    hourly = sum(replicas) * price_per_hour_usd
    monthly = hourly * HOURS
    latency = {
        "p50": p99_ms / 4,
        "p90": p99_ms / 2,
        "p95": p99_ms * 0.7,
        "p99": p99_ms,
        "p999": p99_ms * 1.5,
        "p99_ci_low": p99_ms * 0.95,
        "p99_ci_high": p99_ms * 1.05,
        "mean": p99_ms / 3.5,
        "n": measured - dropped,
    }
    stages = [
        {
            "name": n,
            "replicas": r,
            "workers_per_replica": 1,
            "hardware": "cpu-2",
            "utilization": 0.5,
            "latency_ms": {"p50": p99_ms / 4 / len(names), "p99": p99_ms / 2},
            "mean_batch": 1.0,
            "max_batch": 1,
            "max_wait_ms": 0.0,
        }
        for n, r in zip(names, replicas, strict=True)
    ]
    return {
        "schema_version": 1,
        "run": {"seed": 0, "started_at": "2026-12-01T10:00:00+00:00", "duration_s": 12.3},
        "pipeline": pipeline,
        "quality": {
            "dataset": dataset,
            "ndcg@10": ndcg,
            "recall@10": recall,
            "hr@10": 0.4,
            "mrr@10": 0.2,
            "coverage": 0.3,
            "retrieval_recall@k": retrieval_recall,
            "retrieval_recall_vs_exact@k": 0.97,
            "k": 200,
            "n_users": 300,
        },
        "traffic": {"kind": "poisson", "peak_qps": qps, "requests": measured + 1000},
        "latency_ms": latency,
        "stages": stages,
        "dropped": dropped,
        "cost": {
            "per_1k_requests_usd": hourly / (qps * 3.6),
            "monthly_usd": monthly,
            "tco_monthly_usd": monthly + ENGINEERING_MONTHLY + MAINTENANCE_MONTHLY,
            "hourly_usd": hourly,
            "qps": qps,
            "stages": [
                {
                    "stage": n,
                    "replicas": r,
                    "hardware": "cpu-2",
                    "price_per_hour_usd": price_per_hour_usd,
                    "monthly_usd": r * price_per_hour_usd * HOURS,
                }
                for n, r in zip(names, replicas, strict=True)
            ],
            "assumptions": {
                "hours_per_month": HOURS,
                "engineering_hours": 160.0,
                "engineering_rate_usd": 150.0,
                "amortization_months": 12.0,
                "maintenance_monthly_usd": MAINTENANCE_MONTHLY,
                "source": "recsys defaults, 2026-12",
            },
        },
        "sla": {"p99_ms": sla_p99_ms, "met": p99_ms <= sla_p99_ms, "attainment": 0.995},
        "simulation": {
            "completed": measured - dropped,
            "dropped": dropped,
            "requests": {"arrived": measured + 1000, "measured": measured, "warmup": 1000},
            "unstable": False,
            "sim": {"warmup_s": 10.0, "seed": 0},
        },
        "hardware": {
            n: {
                "name": "cpu-2",
                "vcpu": 2,
                "price_per_hour_usd": price_per_hour_usd,
                "speed_factor": 1.0,
                "price_date": "2026-11-30",
                "price_source": "example cloud list price",
                "memory_gib": 4.0,
                "accelerator": None,
            }
            for n in names
        },
        "config": {"seed": 0},
    }


def write_run(run_dir: Path, result: dict[str, Any] | None, hydra: bool = True) -> Path:
    """A run directory (with ``.hydra/`` like a Hydra job); ``result=None`` leaves it unfinished."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if hydra:
        (run_dir / ".hydra").mkdir(exist_ok=True)
        (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    if result is not None:
        (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    return run_dir


def write_records(run_dir: Path, n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``records.parquet``: warm-up requests (arrival < 10 s), some timeouts, the rest ok."""
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, 60, n))
    e2e = rng.lognormal(np.log(15), 0.5, n)
    outcome = np.where(np.arange(n) % 50 == 7, 1, 0)  # every 50th request timed out
    frame = pd.DataFrame({"request_id": np.arange(n), "arrival_s": arrival, "e2e_ms": e2e})
    frame["outcome"] = pd.Categorical.from_codes(outcome, ("ok", "timeout", "shed"))
    frame.to_parquet(run_dir / "records.parquet", index=False)
    return frame


def write_timeseries(run_dir: Path, minutes: int = 30) -> pd.DataFrame:
    """``timeseries.csv`` as ``recsys.sim.results`` bins it (per minute)."""
    t = np.arange(minutes) * 60.0
    qps = 100 + 50 * np.sin(np.arange(minutes) / minutes * 2 * np.pi)
    frame = pd.DataFrame(
        {
            "t_s": t,
            "complete": True,
            "arrivals": (qps * 60).astype(int),
            "qps": qps,
            "ok": (qps * 60).astype(int),
            "timeout": 0,
            "shed": 0,
            "p50_ms": 15 + qps / 20,
            "p99_ms": 40 + qps / 5,
            "warmup": t < 60,
            "retrieval_replicas": 1.0,
            "ranking_replicas": 2.0 + (qps > 120),
            "retrieval_queue_max": (qps // 40).astype(int),
            "ranking_queue_max": (qps // 30).astype(int),
        }
    )
    frame.to_csv(run_dir / "timeseries.csv", index=False)
    return frame


BASELINE = {
    "retrieval": faiss("Flat"),
    "rankers": ("neural_full",),
    "ndcg": 0.320,
    "p99_ms": 90.0,
    "replicas": (4, 6),
}
HNSW = {"ndcg": 0.318, "p99_ms": 60.0, "replicas": (1, 2)}
HNSW_FAST = {
    "retrieval": faiss("HNSW32", ef_search=16, ef_construction=40),
    "ndcg": 0.300,
    "p99_ms": 40.0,
    "replicas": (1, 1),
}
IVF_SLOW = {
    "retrieval": faiss("IVF256,Flat", nprobe=8),
    "ndcg": 0.319,
    "p99_ms": 150.0,
    "replicas": (1, 1),
}


def make_sweep(root: Path) -> Path:
    """A Hydra multirun directory ``root/multirun/2026-12-01/10-00-00`` with jobs:

    0 baseline Flat + neural_full (over a 5000 USD budget: 10 replicas x 1 USD/h x 730 h),
    1 HNSW32 ef 64 + lightgbm (3 USD/h; records.parquet and timeseries.csv),
    2 HNSW32 ef 16 + lightgbm (2 USD/h; NDCG 6% below the baseline),
    3 IVF256 + lightgbm (2 USD/h; p99 150 ms misses the SLA),
    4 a corrupt result.json, 5 a job that never wrote result.json.
    """
    sweep = root / "multirun" / "2026-12-01" / "10-00-00"
    (sweep / "multirun.yaml").parent.mkdir(parents=True, exist_ok=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    write_run(sweep / "0", result_doc(**BASELINE))
    one = write_run(sweep / "1", result_doc(**HNSW))
    write_records(one)
    write_timeseries(one)
    write_run(sweep / "2", result_doc(**HNSW_FAST))
    write_run(sweep / "3", result_doc(**IVF_SLOW))
    write_run(sweep / "4", None).joinpath("result.json").write_text('{"schema_version": 1, "run"')
    write_run(sweep / "5", None)
    return sweep

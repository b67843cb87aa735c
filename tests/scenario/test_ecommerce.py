"""The e-commerce scenario: its config, the recommendation it writes, and a real tiny run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from recsys.cli.common import CONF_DIR
from recsys.gate import Policy
from recsys.report.compare import compare
from recsys.scenarios.run import entry, pairing_overrides, recommendation
from tests.report.factory import result_doc, write_run

REQUIRED = {
    "pairing",
    "ndcg@10",
    "p99_ms",
    "replicas",
    "per_1k_requests_usd",
    "monthly_usd",
    "sla_met",
}


def test_every_pairing_of_the_scenario_composes():
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose(config_name="config", overrides=["experiment=ecommerce"])
        spec = cfg.scenario
        assert spec.baseline in spec.pairings
        assert list(spec.pairings.baseline) == ["retrieval=neural_full", "ranking=mlp_large"]
        assert cfg.traffic.kind == "diurnal" and cfg.sla.p99_ms == 100
        assert all(e.hardware.price_per_hour_usd > 0 for e in cfg.catalogue.values())
        Policy.from_dict(dict(spec.policy))
        for name, overrides in spec.pairings.items():
            sub = compose(config_name="config", overrides=["experiment=ecommerce", *overrides])
            assert sub.retrieval._target_, name
        cascade = compose(
            config_name="config",
            overrides=["experiment=ecommerce", *spec.pairings.ann_cascade],
        )
        assert len(cascade.pipeline.rankers) == 2


def test_a_pairing_overrides_what_the_command_line_set():
    parent = ["experiment=ecommerce", "ranking=lightgbm", "data=movielens"]
    assert pairing_overrides(parent, ["ranking=mlp_large", "+hosted_api.ranking.name=x"]) == [
        "experiment=ecommerce",
        "data=movielens",
        "ranking=mlp_large",
        "+hosted_api.ranking.name=x",
    ]


def test_recommendation_worked_example(tmp_path):
    # Baseline: 4 + 6 replicas at $1/h serving 100 QPS; redesign: 1 + 2 replicas at $1/h.
    # Cost per 1k requests falls from 10/360 to 3/360: -70%; NDCG 0.300 -> 0.298: -0.67%.
    write_run(tmp_path / "baseline", result_doc(ndcg=0.300, replicas=(4, 6)))
    write_run(tmp_path / "ann", result_doc(ndcg=0.298, replicas=(1, 2)))
    write_run(tmp_path / "worse", result_doc(ndcg=0.25, replicas=(1, 1)))  # loses > 1% NDCG
    write_run(tmp_path / "broken", None)  # a pairing that did not finish
    policy = Policy.from_dict(
        {
            "constraints": [
                {"metric": "sla.met", "op": "==", "value": True},
                {
                    "metric": "quality.ndcg@10",
                    "op": ">=",
                    "relative_to": "baseline",
                    "tolerance_pct": 1,
                },
            ]
        }
    )
    comparison = compare([tmp_path], policy, {"run": "baseline"})
    spec = {"name": "t", "targets": {"cost_reduction_pct": 60, "ndcg_loss_pct": 1}}
    doc = recommendation(comparison, spec, {"broken": "boom"})
    assert set(doc["baseline"]) >= REQUIRED and set(doc["chosen"]) >= REQUIRED
    assert doc["chosen"]["run"] == "ann"
    assert doc["baseline"]["replicas"] == {"retrieval": 4, "ranking": 6}
    assert doc["cost_reduction_pct"] == pytest.approx(70.0)
    assert doc["ndcg_change_pct"] == pytest.approx(-0.2 / 0.3)
    assert doc["targets"]["met"] is True
    assert doc["failed"]["broken"] == "boom"
    assert entry(comparison.recommendation.chosen)["sla_met"] is True


@pytest.mark.slow
def test_tiny_scenario_writes_report_and_recommendation(tmp_path):
    pairings = (
        "{base:['retrieval=hnsw','ranking=lightgbm'],"
        "cheap:['retrieval=hnsw','ranking=lightgbm_small'],"
        "api:['retrieval=hnsw','ranking=lightgbm_small','+hosted_api.ranking.name=x',"
        "'+hosted_api.ranking.price_per_call_usd=0.0001','+hosted_api.ranking.latency_p50_ms=150',"
        "'+hosted_api.ranking.latency_p99_ms=400'],"
        "broken:['retrieval=hnsw','ranking=no_such_ranker']}"
    )
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", RECSYS_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys.cli.sim",
            "experiment=ecommerce",
            "data=tiny",
            "k=50",
            "retrieval.embedding.epochs=2",
            "eval_users=100",
            "traffic.peak_qps=300",
            "sim.n_requests=4000",
            "sim.warmup_requests=400",
            "profile.batch_sizes=[1]",
            "profile.repeats=20",
            "~scenario.pairings",
            f"+scenario.pairings={pairings}",
            "scenario.baseline=base",
            "progress=false",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "recommendation.json").read_text())
    assert set(doc["baseline"]) >= REQUIRED
    assert doc["baseline"]["run"] == "base"
    assert "broken" in doc["failed"] and "no_such_ranker" in doc["failed"]["broken"]
    if doc["chosen"] is not None:
        base, chosen = doc["baseline"], doc["chosen"]
        assert set(chosen) >= REQUIRED
        reduction = 100 * (1 - chosen["per_1k_requests_usd"] / base["per_1k_requests_usd"])
        assert doc["cost_reduction_pct"] == pytest.approx(reduction)
        assert doc["ndcg_change_pct"] == pytest.approx(
            100 * (chosen["ndcg@10"] / base["ndcg@10"] - 1)
        )
    assert (out / "report" / "report.html").is_file()
    # Each pairing ran on the catalogue's cheapest hardware and was priced over a month.
    result = json.loads((out / "pairings" / "cheap" / "result.json").read_text())
    assert result["catalogue"]["feasible"] is True
    assert set(result["hardware"]) == {"retrieval", "ranking"}
    cost = result["cost"]
    assert cost["autoscaled_monthly_usd"] <= cost["provisioned_monthly_usd"] + 1e-9
    assert len(cost["traffic_profile"]["hourly_qps"]) == 24
    # The hosted-API pairing pays per call: $0.0001 a request is $0.10 per 1000.
    api = json.loads((out / "pairings" / "api" / "result.json").read_text())
    assert api["hosted_api"]["ranking"]["per_1k_requests_usd"] == pytest.approx(0.1)
    assert api["cost"]["per_1k_requests_usd"] > 0.1
    assert api["hardware"]["ranking"]["name"] == "api:x"
    # Its p99 alone (400 ms) is over the 100 ms SLA: infeasible at any size, and said so.
    assert api["plan"]["feasible"] is False and "infeasible" in api["plan"]["reason"]
    assert api["catalogue"]["feasible"] is False
    assert api["sla"]["met"] is False
    assert Path(doc["report"]).is_file()

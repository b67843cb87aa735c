"""Optuna through Hydra: a composite-objective study in SQLite, resumed; a Pareto study."""

from __future__ import annotations

import pytest
import yaml

from recsys.result import read_result
from recsys.sweep import Objective
from tests.sweep.conftest import FAST, run_sim

optuna = pytest.importorskip("optuna")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

SPACE = ["ranking=choice(lightgbm_small,popularity)", "k=choice(50,100)"]


@pytest.mark.slow
def test_composite_study_in_sqlite_resumes(tmp_path, shared_cache):
    db = tmp_path / "study.db"
    common = [
        "-m",
        *FAST,
        *SPACE,
        "objective=composite",
        "hydra/sweeper=optuna_composite",
        f"hydra.sweeper.storage=sqlite:///{db}",
        "hydra.sweeper.study_name=resume_me",
    ]
    first = run_sim(
        [*common, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={tmp_path / 'a'}"],
        tmp_path,
        shared_cache,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    study = optuna.load_study(study_name="resume_me", storage=f"sqlite:///{db}")
    assert len(study.trials) == 3
    # Each trial's value is the composite objective of the result.json its job wrote.
    objective = Objective.from_dict(
        yaml.safe_load((tmp_path / "a" / "0" / ".hydra" / "config.yaml").read_text())["objective"]
    )
    assert study.trials[0].value == pytest.approx(
        objective.value(read_result(tmp_path / "a" / "0" / "result.json"))
    )

    again = run_sim(
        [*common, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'b'}"],
        tmp_path,
        shared_cache,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="resume_me", storage=f"sqlite:///{db}")
    assert len(study.trials) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert {t.params["ranking"] for t in study.trials} <= {"lightgbm_small", "popularity"}
    best = yaml.safe_load((tmp_path / "b" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(study.best_value)


@pytest.mark.slow
def test_multi_objective_study_keeps_a_pareto_front(tmp_path, shared_cache):
    db = tmp_path / "pareto.db"
    proc = run_sim(
        [
            "-m",
            *FAST,
            *SPACE,
            "objective=quality_cost",
            "hydra/sweeper=optuna_pareto",
            f"hydra.sweeper.storage=sqlite:///{db}",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={tmp_path / 'p'}",
        ],
        tmp_path,
        shared_cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="recsys_pareto", storage=f"sqlite:///{db}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    trial = study.trials[0]
    result = read_result(tmp_path / "p" / "0" / "result.json")
    assert trial.values == pytest.approx(
        [result["quality"]["ndcg@10"], result["cost"]["per_1k_requests_usd"]]
    )
    front = yaml.safe_load((tmp_path / "p" / "optimization_results.yaml").read_text())
    assert front["solutions"]

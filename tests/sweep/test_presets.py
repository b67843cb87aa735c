"""The sweep experiments and Hydra presets compose into what their comments promise."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir

from recsys.cli.common import CONF_DIR

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
pytest.importorskip("hydra_plugins.hydra_joblib_launcher")


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_grid48_is_48_jobs_two_at_a_time_with_a_report():
    cfg = composed("experiment=grid48")
    axes = cfg.hydra.sweeper.params
    assert math.prod(len(str(v).split(",")) for v in axes.values()) == 48
    assert set(axes) == {"retrieval", "ranking", "hardware", "traffic.peak_qps"}
    assert cfg.hydra.launcher.n_jobs == 2
    assert cfg.hydra.callbacks.report._target_ == "recsys.sweep.ReportCallback"
    assert cfg.data.n_users == 400  # the smoke experiment's tiny data


@pytest.mark.parametrize(
    ("experiment", "objective", "direction"),
    [("optuna_composite", "composite", "minimize"), ("optuna_pareto", "multi", None)],
)
def test_optuna_experiments_store_their_study_in_sqlite(experiment, objective, direction):
    cfg = composed(f"experiment={experiment}")
    assert "optuna" in cfg.hydra.sweeper._target_
    assert str(cfg.hydra.sweeper.storage).startswith("sqlite:///")
    assert cfg.objective.kind == objective
    if direction:
        assert cfg.hydra.sweeper.direction == direction
    else:
        assert list(cfg.hydra.sweeper.direction) == ["maximize", "minimize"]
    assert set(cfg.hydra.sweeper.params) == {"retrieval", "ranking", "k"}


def test_ray_cluster_preset_reads_the_address_from_the_environment(monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    cfg = composed("hydra/launcher=ray_cluster")
    assert cfg.hydra.launcher.ray.init.address == "10.0.0.5:6379"
    assert cfg.hydra.launcher.ray.remote.num_cpus == 1

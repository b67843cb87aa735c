"""Every option of the traffic, hardware and sim groups composes and instantiates."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.hardware import Hardware
from recsys.sim.replay import record_arrivals
from recsys.sim.select import ENGINES, choose_engine
from recsys.sim.workload import Workload

CONF = Path(__file__).resolve().parents[2] / "conf"


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name=None, overrides=overrides)


def _build(node):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Hydra 1.4's execution-whitelist deprecation notice
        return instantiate(node, _convert_="all")


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "traffic").glob("*.yaml")))
def test_traffic_options(option, tmp_path):
    overrides = [f"+traffic={option}"]
    if option == "replay":
        trace = record_arrivals(tmp_path / "t.csv", np.arange(100) * 0.01)
        overrides.append(f"traffic.path={trace}")
    cfg = _compose(overrides)
    workload = _build(cfg.traffic.workload)
    assert isinstance(workload, Workload)
    assert cfg.traffic.kind == option
    times = workload.arrivals(np.random.default_rng(0), n_requests=50)
    assert times.size == 50
    assert np.all(np.diff(times) >= 0)


def test_traffic_peak_qps_override_reaches_the_workload():
    cfg = _compose(["+traffic=poisson", "traffic.peak_qps=1234"])
    assert _build(cfg.traffic.workload).rate_qps == 1234


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "hardware").glob("*.yaml")))
def test_hardware_options(option):
    hardware = _build(_compose([f"+hardware={option}"]).hardware)
    assert isinstance(hardware, Hardware)
    assert hardware.price_per_hour_usd > 0
    assert hardware.price_date
    assert hardware.price_source


def test_sim_options():
    default = _compose(["+sim=default"]).sim
    assert default.autoscaler is None
    assert default.serving.default.max_batch >= 1
    auto = _compose(["+sim=autoscale"]).sim
    assert isinstance(_build(auto.autoscaler), AutoscalerSpec)
    assert auto.n_requests == default.n_requests  # inherits the defaults
    # sim.engine names an engine; auto compiles unless the autoscaler needs SimPy.
    assert default.engine in ENGINES and auto.engine == "auto"
    stages = [object()]
    assert choose_engine(stages, None, default.engine) == "fast"
    assert choose_engine(stages, _build(auto.autoscaler), auto.engine) == "simpy"

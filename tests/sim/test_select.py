"""Engine selection: compiled where it can model the run, SimPy otherwise, refusals explained."""

import numpy as np
import pytest

import recsys.sim
from recsys.errors import ConfigError
from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.select import ENGINES, choose_engine, compiled_available
from recsys.sim.service import Deterministic, Exponential

STAGES = [
    StageSpec("retrieval", Exponential(1.0), max_batch=4, max_wait_ms=1.0, timeout_ms=50.0),
    StageSpec("ranking", Exponential(2.0), replicas=2, queue_capacity=10, network_ms=0.5),
]


def test_auto_compiles_everything_but_the_autoscaler():
    assert compiled_available()  # numba is installed here (the `fast` extra)
    assert choose_engine(STAGES) == "fast"
    assert choose_engine(STAGES, AutoscalerSpec()) == "simpy"
    assert choose_engine(STAGES, engine="callbacks") == "simpy"  # the old config value
    assert {choose_engine(STAGES, engine=e) for e in ENGINES} == {"fast", "simpy", "naive"}


def test_the_chosen_engine_runs_and_says_so():
    arrivals = np.arange(200) * 0.002
    names = {
        engine: simulate(arrivals, STAGES, engine=engine).info.engine
        for engine in ("auto", "simpy", "fast", "naive")
    }
    assert names == {
        "auto": "numba-events",
        "simpy": "simpy-callbacks",
        "fast": "numba-events",
        "naive": "simpy-naive",
    }
    scaled = simulate(arrivals, STAGES, autoscaler=AutoscalerSpec(interval_s=0.1))
    assert scaled.info.engine == "simpy-callbacks"
    assert recsys.sim.simulate is simulate


def test_impossible_choices_are_refused():
    with pytest.raises(ConfigError, match="one of"):
        choose_engine(STAGES, engine="turbo")
    with pytest.raises(ConfigError, match="autoscale"):
        choose_engine(STAGES, AutoscalerSpec(), engine="fast")
    with pytest.raises(ConfigError, match="autoscaler"):
        simulate([0.0, 1.0], [StageSpec("s", Deterministic(1.0))], engine="naive",
                 autoscaler=AutoscalerSpec())  # fmt: skip

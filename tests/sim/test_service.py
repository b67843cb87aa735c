"""Service-time models: analytic what-ifs, measured profiles, hardware scaling."""

import math

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError, DataError
from recsys.sim.hardware import Hardware
from recsys.sim.service import (
    BatchSampler,
    Deterministic,
    EmpiricalServiceTime,
    Exponential,
    Gamma,
    LogNormal,
    Scaled,
    ServiceTimeModel,
)


def test_deterministic_batch_cost_is_linear():
    model = Deterministic(10.0, per_item_ms=2.0)
    rng = np.random.default_rng(0)
    assert model.sample(1, rng) == pytest.approx(0.010)
    assert model.sample(5, rng) == pytest.approx(0.018)
    assert model.mean_s(5) == pytest.approx(0.018)
    assert np.all(model.sample(3, rng, size=4) == pytest.approx(0.014))


@pytest.mark.parametrize(
    ("model", "cv"),
    [(Exponential(4.0), 1.0), (LogNormal(4.0, 0.5), 0.5), (Gamma(4.0, 0.3), 0.3)],
)
def test_analytic_models_have_their_mean_and_cv(model, cv):
    n = 200_000
    x = model.sample(2, np.random.default_rng(1), size=n)
    mean = model.mean_s(2)
    assert mean == pytest.approx(0.004)
    # The sample mean is within 5 standard errors (sd = cv * mean / sqrt(n)).
    assert abs(x.mean() - mean) < 5 * cv * mean / math.sqrt(n)
    assert x.std() / x.mean() == pytest.approx(cv, rel=0.05)
    assert isinstance(model, ServiceTimeModel)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Exponential(0.0),
        lambda: Deterministic(-1.0),
        lambda: LogNormal(1.0, -0.1),
        lambda: Gamma(1.0, 0.0),
        lambda: Exponential(1.0, per_item_ms=-1.0),
        lambda: Scaled(Exponential(1.0), 0.0),
    ],
)
def test_bad_parameters_are_config_errors(make):
    with pytest.raises(ConfigError):
        make()


def test_batch_size_must_be_positive():
    with pytest.raises(ConfigError):
        Exponential(1.0).sample(0, np.random.default_rng(0))


def _profile() -> pd.DataFrame:
    rows = [("ranking", 2, ms) for ms in (1.0, 2.0, 3.0)]
    rows += [("ranking", 4, ms) for ms in (3.0, 6.0, 9.0)]
    rows += [("retrieval", 1, 0.5)]
    return pd.DataFrame(rows, columns=["stage", "batch_size", "service_ms"])


def test_empirical_draws_the_measured_samples():
    model = EmpiricalServiceTime.from_table(_profile(), stage="ranking")
    draws = model.sample(2, np.random.default_rng(0), size=1000)
    assert set(np.round(draws * 1000, 9)) == {1.0, 2.0, 3.0}
    assert model.mean_s(4) == pytest.approx(0.006)


def test_empirical_interpolates_quantiles_between_profiled_sizes():
    model = EmpiricalServiceTime.from_table(_profile(), stage="ranking")
    # Batch 3 sits halfway: each quantile is the average of the neighbours' quantiles.
    draws = model.sample(3, np.random.default_rng(0), size=1000)
    assert set(np.round(draws * 1000, 9)) == {2.0, 4.0, 6.0}
    assert model.mean_s(3) == pytest.approx(0.004)
    # Beyond the profiled range it extrapolates linearly: batch 6 = 4 + (4 - 2).
    assert model.mean_s(6) == pytest.approx(0.010)


def test_empirical_ignores_a_single_n_candidates_and_filters_several():
    table = _profile().assign(n_candidates=200)
    assert EmpiricalServiceTime.from_table(table, stage="ranking").mean_s(2) == pytest.approx(0.002)
    mixed = pd.concat([table, table.assign(n_candidates=500, service_ms=table.service_ms * 2)])
    with pytest.raises(ConfigError, match="n_candidates"):
        EmpiricalServiceTime.from_table(mixed, stage="ranking")
    model = EmpiricalServiceTime.from_table(mixed, stage="ranking", n_candidates=500)
    assert model.mean_s(2) == pytest.approx(0.004)


def test_empirical_refuses_bad_tables():
    with pytest.raises(ConfigError, match="pass stage="):
        EmpiricalServiceTime.from_table(_profile())
    with pytest.raises(DataError, match="no stage"):
        EmpiricalServiceTime.from_table(_profile(), stage="cascade")
    with pytest.raises(DataError, match="lacks column"):
        EmpiricalServiceTime.from_table(_profile().drop(columns="service_ms"), stage="ranking")
    bad = _profile()
    bad.loc[0, "service_ms"] = np.nan
    with pytest.raises(DataError, match="finite"):
        EmpiricalServiceTime.from_table(bad, stage="ranking")
    single = EmpiricalServiceTime.from_table(_profile(), stage="retrieval")
    with pytest.raises(ConfigError, match="only batch size 1"):
        single.mean_s(2)


def test_hardware_scales_service_times():
    fast = Hardware("c7i.large", vcpu=2, price_per_hour_usd=0.09, speed_factor=2.0)
    model = fast.scale(Deterministic(10.0))
    assert model.mean_s(1) == pytest.approx(0.005)
    assert model.sample(1, np.random.default_rng(0)) == pytest.approx(0.005)
    same = Hardware("cpu-2", vcpu=2, price_per_hour_usd=0.09)
    base = Deterministic(10.0)
    assert same.scale(base) is base
    assert fast.cost_usd(10.0) == pytest.approx(0.9)
    assert fast.to_dict()["speed_factor"] == 2.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vcpu": 0, "price_per_hour_usd": 1.0},
        {"vcpu": 2, "price_per_hour_usd": -1.0},
        {"vcpu": 2, "price_per_hour_usd": 1.0, "speed_factor": 0.0},
    ],
)
def test_bad_hardware(kwargs):
    with pytest.raises(ConfigError):
        Hardware("x", **kwargs)


def test_batch_sampler_is_reproducible_and_matches_the_model():
    def draws(seed):
        sampler = BatchSampler(Exponential(5.0), np.random.default_rng(seed), chunk=16)
        return [sampler(b) for b in (1, 2, 1, 3) * 20]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)

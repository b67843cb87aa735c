"""Closed forms of queueing theory, checked against independent derivations."""

import math

import pytest

from recsys.errors import ConfigError
from recsys.sim import theory


def _erlang_c_textbook(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "lam", "mu"), [(1, 0.5, 1.0), (4, 3.2, 1.0), (10, 85.0, 10.0)])
def test_erlang_c_matches_the_textbook_formula(c, lam, mu):
    assert theory.erlang_c(c, lam, mu) == pytest.approx(_erlang_c_textbook(c, lam / mu), rel=1e-12)


def test_mm1_special_case():
    lam, mu = 0.8, 1.0
    assert theory.erlang_c(1, lam, mu) == pytest.approx(0.8)
    assert theory.mmc_mean_wait(1, lam, mu) == pytest.approx(lam / (mu * (mu - lam)))
    # P(W > t) = rho exp(-(mu - lam) t): the median wait solves rho e^{-0.2 t} = 0.5.
    assert theory.mmc_wait_quantile(0.5, 1, lam, mu) == pytest.approx(math.log(1.6) / 0.2)


def test_mmc_quantile_inverts_the_cdf():
    for q in (0.5, 0.9, 0.99, 0.999):
        t = theory.mmc_wait_quantile(q, 4, 3.2, 1.0)
        assert theory.mmc_wait_cdf(t, 4, 3.2, 1.0) == pytest.approx(q)
    assert theory.mmc_wait_quantile(0.3, 4, 3.2, 1.0) == 0.0  # P(W = 0) = 0.40 > 0.3


def test_md1_waiting_time_distribution():
    lam, d = 0.5, 1.0
    assert theory.md1_wait_cdf(0.0, lam, d) == pytest.approx(0.5)  # P(W = 0) = 1 - rho
    # Erlang's sum up to t = D has one term: (1 - rho) e^{lam D}.
    assert theory.md1_wait_cdf(d, lam, d) == pytest.approx(0.5 * math.exp(0.5))
    # The mean of the distribution (integral of its tail, midpoint rule) is the closed form.
    step, tail = 0.025, 0.0
    for i in range(1600):
        tail += (1.0 - theory.md1_wait_cdf((i + 0.5) * step, lam, d)) * step
    assert tail == pytest.approx(theory.md1_mean_wait(lam, d), rel=1e-4)
    q99 = theory.md1_wait_quantile(0.99, lam, d)
    assert theory.md1_wait_cdf(q99, lam, d) == pytest.approx(0.99, abs=1e-9)


def test_pollaczek_khinchine_reduces_to_mm1_and_md1():
    assert theory.mg1_mean_wait(0.7, 1.0, cv=1.0) == pytest.approx(
        theory.mmc_mean_wait(1, 0.7, 1.0)
    )
    assert theory.mg1_mean_wait(0.7, 1.0, cv=0.0) == pytest.approx(theory.md1_mean_wait(0.7, 1.0))


def test_littles_law():
    assert theory.littles_law_l(100.0, 0.02) == pytest.approx(2.0)
    assert theory.mmc_mean_queue_length(4, 3.2, 1.0) == pytest.approx(
        3.2 * theory.mmc_mean_wait(4, 3.2, 1.0)
    )


def test_unstable_queue_has_no_closed_form():
    with pytest.raises(ConfigError, match="no steady state"):
        theory.erlang_c(2, 2.0, 1.0)
